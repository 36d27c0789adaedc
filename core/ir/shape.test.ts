/** Symbolic dims are polynomials: products (`B*T`) and sums (`T+5`, a sequence behind five prefix slots). */
import { expect, test } from 'bun:test';
import { addDims, dimEq, mulDims, normDim, numel, resolveDim, subDims } from './shape.ts';

test('canonical forms compare equal', () => {
  expect(normDim('T*B')).toBe('B*T');
  expect(normDim('5+T')).toBe('T+5');
  expect(normDim('2*T+T')).toBe('3*T');
  expect(normDim('4')).toBe(4);
  expect(dimEq(numel(['B', 'T+5', 4]), '4*B*T+20*B')).toBe(true);
});

test('sums, differences and products', () => {
  expect(addDims('T', 5)).toBe('T+5');
  expect(subDims('T+5', 5)).toBe('T');
  expect(subDims('T', 'T')).toBe(0);
  expect(subDims(3, 'T')).toBe('-T+3');
  expect(mulDims('T+5', 'B')).toBe('B*T+5*B');
  expect(resolveDim('B*T+5*B', { B: 2, T: 3 })).toBe(16);
  expect(() => normDim('T/2')).toThrow(/invalid symbolic dimension/);
  expect(() => resolveDim('T+5', {})).toThrow(/'T' has no value/);
});
