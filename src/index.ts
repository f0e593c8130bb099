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
  log1p, expm1, softplus, logsigmoid, erf, sin, cos, sign, floor, round, lerp,
  add, sub, mul, div, pow, maximum, minimum, eq, ne, lt, le, gt, ge, where, clamp, maskedFill, cast, dropout,
  sum, mean, max, min, prod, variance, std, norm, argmax, argmin, maxWithIndices, minWithIndices, cumsum, topk, sumOfSquares,
  matmul, linear, softmax, logSoftmax, logsumexp, layerNorm, addLayerNorm, rope, ropeInto,
  reshape, permute, transpose, slice, expand, unsqueeze, squeeze, contiguous, concat, stack,
  split, chunk, flip, repeat, tile, tril, triu,
  gather, indexSelect, embedding, oneHot, scatterAdd, crossEntropy, tokenLogProbs, assign, clone, sampleInto,
} from './tensor/ops.js';
export type { CreateOptions, CrossEntropyOptions, SampleState, TensorOrScalar } from './tensor/ops.js';
export { memoryStats, execStats, resetPeak, profile, formatProfile } from './gpu/stats.js';
export type { KernelTime, ProfileReport } from './gpu/stats.js';
export type { DispatchTiming } from './gpu/device.js';
export { attention, type AttentionOptions } from './tensor/attention.js';
/** The TriMPI objectives (VM-CPT, SFT, GRPO/DAPO, PolicyRollout, rewards), each returning `{ loss, metrics }`; see docs/losses.md. */
export * as losses from './trimpi/losses/index.js';
export { setMatmulConfig, tuneMatmulTiles } from './kernels/matmul.js';
export { applyMatmulTuneResults, describeTuneCases, describeTuneTile, loadMatmulTiles, matmulShapeClass, matmulTiles, matmulTilesFile, saveMatmulTiles, setMatmulTiles } from './kernels/matmul_tuning.js';
export type { MatmulCase, MatmulTile, MatmulTuneResult } from './kernels/matmul_tuning.js';
export type { MatmulConfig, MatmulVariant } from './kernels/matmul.js';
/** The data: CLEVR-like scenes and their renderer, ClevrPolicy, SceneQA, ToolPolicy, the tokenizer and the dataset writer. */
export * as data from './trimpi/data/index.js';
/** Models and training: modules, the vision-language model, generation, LoRA, AdamW, the Trainer, checkpoints, presets. */
export * as nn from './nn/index.js';
/** The TriMPI training stages: stage-0 base training, the supervised stages and RL with PolicyRollout. */
export * as stages from './trimpi/stages/index.js';
/** Evaluation: policy accuracy and the other measurements of the paper's tables. */
export * as evaluation from './trimpi/eval/index.js';
/** The end-to-end pipeline behind `trimpi run` / `trimpi pretrain`. */
export * as pipeline from './trimpi/run.js';
