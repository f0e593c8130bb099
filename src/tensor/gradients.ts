// Gradients as a table of rules, one per op, in the spirit of tinygrad: each takes the upstream
// gradient g and the op's context and returns one gradient per input (null = none). Rules may
// return gradients of the *broadcast* shape: backward() sums them back to each input's shape.
// Rules run under noGrad inside a tidy(), so their temporaries are freed at once.
import type { Tensor } from './tensor.js';
import * as ops from './ops.js';
import { attentionBackward } from './attention.js';

export interface GradContext {
  inputs: readonly (Tensor | number | null)[];
  out: Tensor;
  saved: Record<string, unknown>;
}

type Rule = (g: Tensor, ctx: GradContext) => (Tensor | null)[];

const T = (x: Tensor | number | null): Tensor => x as Tensor;
const f = ops.fmap; // fused element-wise expression over tensors (and numbers), see ops.fmap

export const GRAD_RULES: Record<string, Rule> = {
  // unary: a = input (or output), b = g
  neg: (g) => [ops.neg(g)],
  exp: (g, { out }) => [ops.mul(g, out)],
  log: (g, { inputs: [x] }) => [ops.div(g, T(x))],
  sqrt: (g, { out }) => [f('b / (2.0 * a)', out, g)],
  rsqrt: (g, { out }) => [f('-0.5 * a * a * a * b', out, g)],
  tanh: (g, { out }) => [f('(1.0 - a * a) * b', out, g)],
  sigmoid: (g, { out }) => [f('a * (1.0 - a) * b', out, g)],
  relu: (g, { inputs: [x] }) => [f('select(0.0, b, a > 0.0)', T(x), g)],
  gelu: (g, { inputs: [x] }) => [f('gelu_erf_grad(a) * b', T(x), g)],
  gelu_tanh: (g, { inputs: [x] }) => [f('gelu_tanh_grad(a) * b', T(x), g)],
  silu: (g, { inputs: [x] }) => [f('silu_grad(a) * b', T(x), g)],
  abs: (g, { inputs: [x] }) => [f('sign(a) * b', T(x), g)],
  clamp: (g, { inputs: [x], saved: { lo, hi } }) => [f('select(0.0, b, a >= p.x && a <= p.y)', T(x), g, { scalars: [lo as number, hi as number] })],

  // binary (inputs may be numbers: their gradient is dropped)
  add: (g) => [g, g],
  sub: (g) => [g, ops.neg(g)],
  mul: (g, { inputs: [a, b] }) => [ops.mul(g, b as Tensor | number), ops.mul(g, a as Tensor | number)],
  div: (g, { inputs: [a, b] }) => [ops.div(g, b as Tensor | number), f('-c * a / (b * b)', a as Tensor | number, b as Tensor | number, g)],
  pow: (g, { inputs: [a, b], out }) => [
    f('c * b * pow_f(a, b - 1.0)', a as Tensor | number, b as Tensor | number, g),
    typeof b === 'number' ? null : f('c * b * log(a)', a as Tensor | number, out, g),
  ],
  // ties send half the gradient to each side
  maximum: (g, { inputs: [a, b] }) => [
    f('c * select(select(0.0, 0.5, a == b), 1.0, a > b)', a as Tensor | number, b as Tensor | number, g),
    f('c * select(select(0.0, 0.5, a == b), 1.0, b > a)', a as Tensor | number, b as Tensor | number, g),
  ],
  minimum: (g, { inputs: [a, b] }) => [
    f('c * select(select(0.0, 0.5, a == b), 1.0, a < b)', a as Tensor | number, b as Tensor | number, g),
    f('c * select(select(0.0, 0.5, a == b), 1.0, b < a)', a as Tensor | number, b as Tensor | number, g),
  ],
  where: (g, { inputs: [c] }) => [null, f('select(0.0, b, a != 0.0)', T(c), g), f('select(b, 0.0, a != 0.0)', T(c), g)],
  maskedFill: (g, { inputs: [, mask] }) => [f('select(b, 0.0, a != 0.0)', T(mask), g), null],
  dropout: (g, { saved: { keepMask, scale } }) => [f('a * b * p.x', keepMask as Tensor, g, { scalars: [scale as number] })],

  // reductions: g has the reduced shape; put the reduced axes back as size 1 and broadcast
  sum: (g, { inputs: [x], saved: { keepShape } }) => [ops.reshape(g, keepShape as number[]).expand(T(x).shape)],
  mean: (g, { inputs: [x], saved: { keepShape, n } }) => [f('a * p.x', ops.reshape(g, keepShape as number[]).expand(T(x).shape), { scalars: [1 / (n as number)] })],
  max: extremumRule,
  min: extremumRule,
  logsumexp: (g, { inputs: [x], out, saved: { keepShape } }) =>
    [f('exp(a - b) * c', T(x), ops.reshape(out, keepShape as number[]), ops.reshape(g, keepShape as number[]))],

  // linear algebra and normalisation (fused backward kernels where it pays)
  matmul: (g, { inputs: [a, b] }) => [ops.matmul(g, ops.transpose(T(b), -2, -1)), ops.matmul(ops.transpose(T(a), -2, -1), g)],
  softmax: (g, { out, saved: { axis } }) => [ops.softmaxBackward(out, g, axis as number, false)],
  logSoftmax: (g, { out, saved: { axis } }) => [ops.softmaxBackward(out, g, axis as number, true)],
  layerNorm: (g, ctx) => ops.layerNormBackward(g, ctx),
  linear: (g, ctx) => ops.linearBackward(g, ctx),
  tokenLogProbs: (g, ctx) => ops.tokenLogProbsBackward(g, ctx),
  attention: (g, ctx) => attentionBackward(g, ctx),

  // views and copies
  reshape: (g, { inputs: [x] }) => [ops.reshape(g, T(x).shape)],
  permute: (g, { saved: { inverse } }) => [ops.permute(g, inverse as number[])],
  expand: (g) => [g],
  contiguous: (g) => [g],
  slice: (g, { inputs: [x], saved: { axis, start } }) => [ops.sliceBackward(g, T(x).shape, axis as number, start as number)],
  concat: (g, { inputs, saved: { axis, starts } }) =>
    inputs.map((x, i) => ops.slice(g, axis as number, (starts as number[])[i], (starts as number[])[i] + T(x).shape[axis as number])),

  // indexing: the index gets no gradient; the source gets a deterministic scatter-add
  gather: (g, { inputs: [x, index], saved: { axis } }) => [ops.gatherBackward(g, T(x).shape, axis as number, T(index)), null],
  indexSelect: (g, { inputs: [x, index], saved: { axis } }) =>
    [ops.gatherBackward(g, T(x).shape, axis as number, ops.indexSelectView(T(index), T(x).shape, axis as number)), null],
};

function extremumRule(g: Tensor, { inputs: [x], out, saved: { keepShape, axes } }: GradContext): (Tensor | null)[] {
  // the gradient goes to every position equal to the extreme, split evenly among ties
  const ext = ops.reshape(out, keepShape as number[]);
  const mask = ops.eq(T(x), ext);
  const count = ops.sum(mask, axes as number[], true);
  return [f('a * b / c', mask, ops.reshape(g, keepShape as number[]), count)];
}
