export * from './basic.ts';
export * from './norm.ts';
export * from './rope.ts';
export * from './attention.ts';
export * from './loss.ts';
