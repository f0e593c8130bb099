// trimpi-webgpu: a WebGPU tensor and reverse-mode autograd engine (Node.js on Dawn).
export { Tensor } from './tensor/tensor.js';
export type { TensorData, NestedArray } from './tensor/tensor.js';
export type { DType } from './gpu/dtype.js';
export { TrimpiError } from './gpu/errors.js';
export { Device, NoAdapterError, createDevice, currentDevice, init, installHint, setDevice } from './gpu/device.js';
export type { AdapterDescription, DeviceOptions, ExecStats } from './gpu/device.js';
export { tidy, keep } from './tensor/memory.js';
export { bucketSize } from './gpu/memory.js';
export type { MemoryStats } from './gpu/memory.js';
export { noGrad, isGradEnabled } from './tensor/autograd.js';
export {
  tensor, zeros, ones, full, zerosLike, onesLike, arange, rand, randn, manualSeed,
  neg, exp, log, sqrt, rsqrt, tanh, sigmoid, relu, gelu, silu, abs,
  add, sub, mul, div, pow, maximum, minimum, eq, ne, lt, le, gt, ge, where, clamp, maskedFill, cast, dropout,
  sum, mean, max, min, variance, argmax, sumOfSquares, matmul, linear, softmax, logSoftmax, logsumexp, layerNorm,
  reshape, permute, transpose, slice, expand, unsqueeze, squeeze, contiguous, concat, stack,
  gather, indexSelect, embedding, crossEntropy, tokenLogProbs, assign, clone,
} from './tensor/ops.js';
export type { CreateOptions, CrossEntropyOptions, TensorOrScalar } from './tensor/ops.js';
export { memoryStats, execStats, resetPeak, profile, formatProfile } from './gpu/stats.js';
export type { KernelTime, ProfileReport } from './gpu/stats.js';
export type { DispatchTiming } from './gpu/device.js';
export { attention, type AttentionOptions } from './tensor/attention.js';
export * as losses from './trimpi/losses/index.js';
export { setMatmulConfig } from './kernels/matmul.js';
export type { MatmulConfig, MatmulVariant } from './kernels/matmul.js';
export * as data from './trimpi/data/index.js';
export * as nn from './nn/index.js';
export * as stages from './trimpi/stages/index.js';
export * as evaluation from './trimpi/eval/index.js';
export * as pipeline from './trimpi/run.js';
