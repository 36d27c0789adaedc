/** A failed check of the plugin kit: the message says what was checked, what came out, and what was expected. */
export class KitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KitError';
  }
}
