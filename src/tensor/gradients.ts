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
  log1p: (g, { inputs: [x] }) => [f('b / (1.0 + a)', T(x), g)],
  expm1: (g, { out }) => [f('(a + 1.0) * b', out, g)],
  logsigmoid: (g, { inputs: [x] }) => [f('sigmoid_f(-a) * b', T(x), g)],
  softplus: (g, { inputs: [x], saved: { beta, threshold } }) =>
    [f('select(sigmoid_f(p.x * a), 1.0, p.x * a > p.y) * b', T(x), g, { scalars: [beta as number, threshold as number] })],
  erf: (g, { inputs: [x] }) => [f('1.1283791670955126 * exp(-a * a) * b', T(x), g)],
  sin: (g, { inputs: [x] }) => [f('cos(a) * b', T(x), g)],
  cos: (g, { inputs: [x] }) => [f('-sin(a) * b', T(x), g)],
  // piecewise constant: zero gradient (as PyTorch)
  sign: (g) => [ops.zerosLike(g)],
  floor: (g) => [ops.zerosLike(g)],
  round: (g) => [ops.zerosLike(g)],
  tril: (g, { saved: { diagonal } }) => [ops.triangle(g, false, diagonal as number)],
  triu: (g, { saved: { diagonal } }) => [ops.triangle(g, true, diagonal as number)],
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
  lerp: (g, { inputs: [s, e, w] }) => [
    f('b * (1.0 - a)', w as Tensor | number, g),
    f('b * a', w as Tensor | number, g),
    typeof w === 'number' ? null : f('c * (b - a)', s as Tensor | number, e as Tensor | number, g),
  ],
  where: (g, { inputs: [c] }) => [null, f('select(0.0, b, nonzero_f(a))', T(c), g), f('select(b, 0.0, nonzero_f(a))', T(c), g)],
  maskedFill: (g, { inputs: [, mask] }) => [f('select(b, 0.0, nonzero_f(a))', T(mask), g), null],
  dropout: (g, { saved: { keepMask, scale } }) => [f('a * b * p.x', keepMask as Tensor, g, { scalars: [scale as number] })],

  // reductions: g has the reduced shape; put the reduced axes back as size 1 and broadcast
  sum: (g, { inputs: [x], saved: { keepShape } }) => [ops.reshape(g, keepShape as number[]).expand(T(x).shape)],
  mean: (g, { inputs: [x], saved: { keepShape, n } }) => [f('a * p.x', ops.reshape(g, keepShape as number[]).expand(T(x).shape), { scalars: [1 / (n as number)] })],
  max: extremumRule,
  min: extremumRule,
  prod: (g, ctx) => ops.prodBackward(g, ctx),
  norm: (g, { inputs: [x], out, saved: { keepShape } }) =>
    [f('select(0.0, c * a / b, b > 0.0)', T(x), ops.reshape(out, keepShape as number[]), ops.reshape(g, keepShape as number[]))],
  cumsum: (g, { saved: { axis } }) => [ops.cumulative(g, 'sum', axis as number, { reverse: true })],
  logsumexp: (g, { inputs: [x], out, saved: { keepShape } }) =>
    [f('exp(a - b) * c', T(x), ops.reshape(out, keepShape as number[]), ops.reshape(g, keepShape as number[]))],

  // linear algebra and normalisation (fused backward kernels where it pays)
  matmul: (g, { inputs: [a, b] }) => [ops.matmul(g, ops.transpose(T(b), -2, -1)), ops.matmul(ops.transpose(T(a), -2, -1), g)],
  softmax: (g, { out, saved: { axis } }) => [ops.softmaxBackward(out, g, axis as number, false)],
  logSoftmax: (g, { out, saved: { axis } }) => [ops.softmaxBackward(out, g, axis as number, true)],
  layerNorm: (g, ctx) => ops.layerNormBackward(g, ctx),
  rope: (g, ctx) => ops.ropeBackward(g, ctx),
  linear: (g, ctx) => ops.linearBackward(g, ctx),
  tokenLogProbs: (g, ctx) => ops.tokenLogProbsBackward(g, ctx),
  attention: (g, ctx) => attentionBackward(g, ctx),

  // views and copies
  reshape: (g, { inputs: [x] }) => [ops.reshape(g, T(x).shape)],
  permute: (g, { saved: { inverse } }) => [ops.permute(g, inverse as number[])],
  expand: (g) => [g],
  contiguous: (g) => [g],
  flip: (g, { saved: { axes } }) => [ops.flipCopy(g, axes as number[])],
  slice: (g, { inputs: [x], saved: { axis, start } }) => [ops.sliceBackward(g, T(x).shape, axis as number, start as number)],
  concat: (g, { inputs, saved: { axis, starts } }) =>
    inputs.map((x, i) => ops.slice(g, axis as number, (starts as number[])[i], (starts as number[])[i] + T(x).shape[axis as number])),

  // indexing: the index gets no gradient; the source gets a deterministic scatter-add
  gather: (g, { inputs: [x, index], saved: { axis } }) => [ops.gatherBackward(g, T(x).shape, axis as number, T(index)), null],
  indexSelect: (g, { inputs: [x, index], saved: { axis } }) =>
    [ops.gatherBackward(g, T(x).shape, axis as number, ops.indexSelectView(T(index), T(x).shape, axis as number)), null],
  scatterAdd: (g, { inputs: [, index], saved: { axis } }) => [ops.gather(g, axis as number, T(index)), null],
};

/**
 * What each rule reads besides g: input indices, and 'out' for the op's output. autograd records the
 * version of each at the forward and backward() raises if one was written in place since (PyTorch's
 * saved-tensor version check). Rules that need only shapes save nothing. Every rule has an entry.
 */
export const SAVED_FOR_BACKWARD: Record<string, readonly (number | 'out')[]> = {
  neg: [], exp: ['out'], log: [0], sqrt: ['out'], rsqrt: ['out'], tanh: ['out'], sigmoid: ['out'],
  relu: [0], gelu: [0], gelu_tanh: [0], silu: [0], abs: [0], log1p: [0], expm1: ['out'], logsigmoid: [0],
  softplus: [0], erf: [0], sin: [0], cos: [0], sign: [], floor: [], round: [], tril: [], triu: [], clamp: [0],
  add: [], sub: [], mul: [0, 1], div: [0, 1], pow: [0, 1, 'out'], maximum: [0, 1], minimum: [0, 1],
  lerp: [0, 1, 2], where: [0], maskedFill: [1], dropout: [],
  sum: [], mean: [], max: [0, 'out'], min: [0, 'out'], prod: [0], norm: [0, 'out'], cumsum: [], logsumexp: [0, 'out'],
  matmul: [0, 1], softmax: ['out'], logSoftmax: ['out'], layerNorm: [0, 1], rope: [1, 2], linear: [0, 1], tokenLogProbs: [0, 1],
  attention: [0, 1, 2, 3, 4, 'out'],
  reshape: [], permute: [], expand: [], contiguous: [], flip: [], slice: [], concat: [],
  gather: [1], indexSelect: [1], scatterAdd: [1],
};

function extremumRule(g: Tensor, { inputs: [x], out, saved: { keepShape, axes } }: GradContext): (Tensor | null)[] {
  // the gradient goes to every position equal to the extreme, split evenly among ties
  const ext = ops.reshape(out, keepShape as number[]);
  const mask = ops.eq(T(x), ext);
  const count = ops.sum(mask, axes as number[], true);
  return [f('a * b / c', mask, ops.reshape(g, keepShape as number[]), count)];
}
