/**
 * Curve smoothing for noisy training metrics.
 */

/**
 * Exponential moving average of a curve's y values: `s_i = s_{i-1} + alpha * (y_i - s_{i-1})`, starting at the
 * first y. `alpha` is the weight of the newest point, in (0, 1]: 1 is no smoothing, 0.05 is heavy (TensorBoard's
 * "smoothing 0.95"). Points whose x or y is not finite are dropped. Returns new points; x values are unchanged.
 */
export function ema(points: readonly (readonly [number, number])[], alpha: number): [number, number][] {
  if (!(alpha > 0 && alpha <= 1)) throw new Error(`ema: alpha must be in (0, 1], got ${alpha}`);
  const out: [number, number][] = [];
  let s: number | undefined;
  for (const [x, y] of points) {
    if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
    s = s === undefined ? y : s + alpha * (y - s);
    out.push([x, s]);
  }
  return out;
}
