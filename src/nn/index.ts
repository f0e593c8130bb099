// src/nn: modules, the vision-language model, generation, training-loop pieces and checkpoints.
//
// Conventions in one place:
// - Parameters are created once and keep()-ed; Module.dispose() frees them. Forwards create only
//   intermediates: call them inside the caller's tidy(). KV caches are explicit (dispose()).
// - Image places: the tokenizer emits ONE `<image>` per image; VisionLanguageModel expands it to the
//   image's P patch positions (layout / prepareBatch / expandPerToken / textMask map masks onto the
//   expanded positions). A batch's images are one (N, C, H, W) tensor in order of appearance.
// - Linear weights are (in, out) (the engine's linear layout), also in checkpoints.
// - Generation samples on the CPU from one readback of the step's last logits (B × V); the returned
//   log-probs are log-softmax of the raw logits (temperature 1).
// - Training: Trainer.trainStep re-seeds the engine RNG from (seed, step), so a resumed run draws the
//   same dropout masks as an uninterrupted one; no readback inside a step. A step with a NaN/Inf loss
//   or gradient norm is skipped on the GPU; `await trainer.checkNonFinite()` raises after too many.
// - Checkpoints: crash-safe saves (versioned data files committed by renaming config.json) and
//   verified, all-or-nothing loads (CRC32 per tensor, finite values, config and shapes).
// - LoRA: applyLora freezes the base model (requiresGrad false, left out of parameterGroups) and adds
//   `<layer>.lora_A` / `lora_B` parameters to the Linears; merge() folds them into the weights.
export { Parameter, Module, Linear, Embedding, LayerNorm, Dropout, MLP } from './module.js';
export type { HostTensor, InitOptions, LoraAdapter } from './module.js';
export { KVCache, MultiHeadAttention, TransformerBlock } from './attention.js';
export type { AttentionMasks, LayerCache } from './attention.js';
export { PatchEmbed, ViTEncoder } from './vit.js';
export type { ViTOptions } from './vit.js';
export { DecoderLM, VisionLanguageModel, validateConfig } from './vlm.js';
export type { BatchOptions, SequenceLayout, VlmBatch, VlmConfig, VlmInputs } from './vlm.js';
export { PRESET_NAMES, preset } from './presets.js';
export type { Preset, PresetName, TrainPreset } from './presets.js';
export { generate, sampleTokens } from './generate.js';
export type { GenerateOptions, GenerateResult, SampleOptions } from './generate.js';
export { LoraHandle, applyLora, loraLayers } from './lora.js';
export type { LoraLayerConfig, LoraOptions } from './lora.js';
export { Trainer, parameterGroups, stepSeed, warmupCosine } from './train.js';
export type { ScheduleOptions, SkipStats, StepResult, TrainerOptions } from './train.js';
export { AdamW, globalGradNorm, nonFiniteFlag } from './optim.js';
export type { AdamWOptions, ParamGroup, UpdateResult } from './optim.js';
export { CRC_PREFIX, crc32, decodeSafetensors, encodeSafetensors, fsyncDir, isAtomicTempName, readSafetensors, writeFileAtomic, writeSafetensors } from './safetensors.js';
export type { Safetensors } from './safetensors.js';
export { CHECKPOINT_FORMAT, CHECKPOINT_VERSION, loadCheckpoint, loadVisionLanguageModel, readManifest, saveCheckpoint } from './checkpoint.js';
export type { CheckpointManifest, JsonValue, LoadOptions, SaveOptions } from './checkpoint.js';
export { benchmarkPreset, presetMatmulCases, trainFlops } from './bench.js';
export type { DecodeKernelTime, PresetBenchOptions, PresetBenchResult } from './bench.js';
