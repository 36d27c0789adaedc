/** What the service tests share: a chat JSONL of OpenAI messages, and polling until something holds. */

/** `n` short chats in OpenAI's `messages` format. */
export function chatJsonl(n = 24): string {
  const names = ['Lily', 'Tom', 'Sam', 'Mia', 'Ben', 'Zoe'];
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const name = names[i % names.length]!;
    lines.push(JSON.stringify({ messages: [{ role: 'user', content: `Tell me about ${name}.` }, { role: 'assistant', content: `${name} was a happy child who liked to play in the park.` }] }));
  }
  return `${lines.join('\n')}\n`;
}

/** Polls until `check` returns a value (or the time runs out). */
export async function until<T>(what: string, check: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(200);
  }
}
