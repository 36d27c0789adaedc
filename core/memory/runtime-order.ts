/**
 * onnxruntime's default execution order (GraphViewer: `ReverseDFSFrom` the leaf nodes with `NodeCompare`, i.e.
 * producers sorted by node index, pushed on a stack and so explored highest index first). `producers[i]` lists the
 * nodes whose outputs node i reads; `live` says which nodes take part.
 */
export function runtimeOrder(producers: readonly number[][], live: (i: number) => boolean): number[] {
  const n = producers.length;
  const read = new Uint8Array(n);
  for (let i = 0; i < n; i++) if (live(i)) for (const p of producers[i]!) read[p] = 1;
  const stack: number[] = []; // node index, or ~index for "emit on leaving"
  for (let i = 0; i < n; i++) if (live(i) && !read[i]) stack.push(i);
  const visited = new Uint8Array(n);
  const order: number[] = [];
  while (stack.length > 0) {
    const i = stack.pop()!;
    if (i < 0) {
      order.push(~i);
      continue;
    }
    if (visited[i]) continue;
    visited[i] = 1;
    stack.push(~i);
    for (const p of producers[i]!) if (!visited[p]) stack.push(p);
  }
  return order;
}
