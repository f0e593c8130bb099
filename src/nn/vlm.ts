// The vision-language model: a ViT encoder, a linear projector and a causal decoder LM with tied
// embeddings (docs/trimpi.md section 4). Images enter the decoder as projected ViT patch tokens
// scattered into the `<image>` places of the token sequence.
//
// Image places (the one convention every caller relies on): the tokenizer emits ONE `<image>` token
// per image, and the model expands it to the image's P patch positions (P = (imageSize/(patchSize·mergeSize))²).
// `layout(tokens)` gives the expanded sequence and the map between original and expanded positions;
// `prepareBatch` pads a batch of such sequences and says which rows are visual, so the loss masks
// (VM-CPT masks visual positions) line up with the logits. Images of a batch are passed as one
// (N, C, H, W) tensor in order of appearance: sequence 0's images first, each in token order.
import { check, checkNumber, fmtShape } from '../gpu/errors.js';
import { assign, manualSeed, concat, embedding, fmap, indexSelect, linear, permute, reshape, slice, tensor, transpose } from '../tensor/ops.js';
import { Tensor } from '../tensor/tensor.js';
import { AttentionMasks, KVCache, TransformerBlock, blockStack, runBlocks } from './attention.js';
import { Embedding, LayerNorm, Linear, MAX_LAYERS, Module, checkSize, checkStd } from './module.js';
import { ViTEncoder } from './vit.js';
import { checkOptions, checkTensor } from '../tensor/validate.js';

/** Everything that defines a model's architecture (saved as config.json beside a checkpoint). */
export interface VlmConfig {
  vocabSize: number;
  /** Id of `<image>` (each one expands to P patch positions). */
  imageTokenId: number;
  /** Id used for padding. */
  padId: number;
  imageSize: number;
  patchSize: number;
  channels: number;
  visionDim: number;
  visionLayers: number;
  visionHeads: number;
  dim: number;
  layers: number;
  heads: number;
  /** Decoder context: the most expanded positions (text + image patches) a sequence may have. */
  maxPositions: number;
  mlpRatio: number;
  dropout: number;
  layerNormEps: number;
  /** Standard deviation of the weight initialisation (GPT-2: 0.02). */
  initStd: number;
  /** Seed of the weight initialisation. */
  seed: number;
  /**
   * Pixel normalisation before the patch embedding: (x − pixelMean) / pixelStd, one value for every
   * channel. Rendered scenes are [0, 1] pixels on a ~0.66 grey ground with std ~0.14: unnormalised,
   * the patch embedding sees inputs far from unit scale. Absent: pixels enter as they are.
   */
  pixelMean?: number;
  pixelStd?: number;
  /**
   * Patch merging: each k × k block of ViT patch tokens is concatenated into one token (visionDim·k²)
   * before the projector, so the ViT sees small patches while the decoder gets
   * (imageSize / (patchSize·k))² positions per image (Qwen2-VL merges 2 × 2). Absent: 1 (no merging).
   */
  mergeSize?: number;
  /**
   * How the decoder knows positions: 'learned' (a (maxPositions, C) table added to the input, GPT-2)
   * or 'rope' (rotary embeddings of the queries and keys, Su et al. 2021, base 10,000, as Qwen2.5's
   * text positions: attention scores then depend on the offset between two positions, which is what
   * copying from the context needs). Absent: 'learned'.
   */
  positionEncoding?: 'learned' | 'rope';
}

/** One sequence with its `<image>` tokens expanded to patch positions. */
export interface SequenceLayout {
  /** Expanded ids: each `<image>` becomes P copies of the image id. */
  ids: number[];
  /** 1 where the position holds an image patch, 0 on text. */
  visual: number[];
  /** For each expanded position, the index of the original token it came from. */
  source: number[];
  /** For each original token, its first expanded position. */
  positionOf: number[];
  /** Number of images (`<image>` tokens) in the sequence. */
  images: number;
}

/** How VisionLanguageModel.prepareBatch pads a batch. */
export interface BatchOptions {
  /** 'right' (training: positions start at 0 everywhere) or 'left' (generation: every prompt ends at T − 1). Default 'right'. */
  padSide?: 'right' | 'left';
  /** Pad to this length (default: the longest expanded sequence). */
  length?: number;
}

/** A padded batch on the host: (B, T) row-major arrays. Turn it into GPU tensors with `toInputs`. */
export interface VlmBatch {
  B: number;
  T: number;
  padSide: 'right' | 'left';
  layouts: SequenceLayout[];
  /** Padding before each row's first token (left padding), 0 with right padding. */
  padBefore: number[];
  /** Expanded token ids (pad id on padding). */
  ids: Int32Array;
  /** Learned-position index of each slot (0 at each row's first real token; 0 on padding). */
  positions: Int32Array;
  /** 1 on real tokens (text and image), 0 on padding. */
  attention: Float32Array;
  /** 1 on image-patch positions. */
  visual: Float32Array;
  /** For each slot: −1 for text/padding, else its row in the (N·P, C) image-token table. */
  imageRow: Int32Array;
  /** Images the batch needs (N). */
  numImages: number;
}

/** The GPU inputs of a forward. */
export interface VlmInputs {
  /** (B, T) i32 expanded ids. */
  tokens: Tensor;
  /** (B, T) i32 learned-position ids. */
  positions: Tensor;
  /** (N, C, H, W) images in order of appearance, or null when the batch has none. */
  images: Tensor | null;
  /** (B·T,) i32 row of each slot in [token embeddings (B·T) ; image tokens (N·P)], or null without images. */
  gatherIndex: Tensor | null;
  /** (B, T) f32 key-valid mask: 1 = a real token, 0 = padding (never attended); null when nothing is padded. */
  keyValid: Tensor | null;
  /**
   * imageTokens(images) (N, P, C) when the caller has computed them already (stage 0 also trains
   * them with a loss of their own): the forward uses them instead of running the vision tower again.
   */
  imageTokens?: Tensor;
}

/** The causal decoder LM: token embeddings, learned or rotary positions, pre-LN blocks, final LN, tied output head. */
export class DecoderLM extends Module {
  readonly tokenEmbedding: Embedding;
  /** The learned position table, or null with rotary positions. */
  readonly positionEmbedding: Embedding | null;
  readonly blocks: TransformerBlock[];
  readonly lnFinal: LayerNorm;

  constructor(opts: { vocabSize: number; maxPositions: number; dim: number; layers: number; heads: number; mlpRatio?: number; dropout?: number; std?: number; eps?: number; rope?: boolean }) {
    super();
    const op = 'DecoderLM';
    check(typeof opts === 'object' && opts !== null, op, () => 'options must be an object');
    for (const k of ['vocabSize', 'maxPositions', 'dim', 'heads'] as const) checkSize(op, k, opts[k]);
    checkNumber(op, 'layers', opts.layers, { integer: true, min: 0, max: MAX_LAYERS });
    check(opts.dim % opts.heads === 0, op, () => `width ${opts.dim} must be a multiple of the number of heads ${opts.heads}`);
    checkStd(op, 'std', opts.std);
    const std = opts.std ?? 0.02;
    try {
      this.tokenEmbedding = this.addModule('wte', new Embedding(opts.vocabSize, opts.dim, { std }));
      this.positionEmbedding = opts.rope ? null : this.addModule('wpe', new Embedding(opts.maxPositions, opts.dim, { std }));
      this.blocks = blockStack((name, block) => this.addModule(name, block), { ...opts, std });
      this.lnFinal = this.addModule('ln_f', new LayerNorm(opts.dim, opts.eps));
    } catch (e) {
      throw this.abandon(e);
    }
  }

  /** ids is (B, T) i32 → (B, T, C). */
  embedTokens(ids: Tensor): Tensor {
    return this.tokenEmbedding.forward(ids);
  }

  /**
   * x is (B, T, C) input embeddings, positions (B, T) i32 → hidden states (B, T, C) after the final LN.
   * With `cache`, layer i writes its keys/values at [cache.length, cache.length + T); the caller
   * advances cache.length afterwards.
   */
  forwardEmbeddings(x: Tensor, positions: Tensor, masks: AttentionMasks, cache?: KVCache): Tensor {
    let h = x;
    let m = masks;
    if (this.positionEmbedding) h = h.add(embedding(positions, this.positionEmbedding.weight));
    else m = { ...masks, rotary: rotaryTables(positions, this.blocks[0]?.attn.headDim ?? 2) };
    return runBlocks(this.blocks, this.lnFinal, h, m, (i) => (cache ? { entries: cache.entries[i], start: cache.length } : undefined));
  }

  /** hidden is (..., C) → logits (..., V) with the token embedding as the output matrix (tied). */
  logits(hidden: Tensor): Tensor {
    return linear(hidden, transpose(this.tokenEmbedding.weight, 0, 1));
  }
}

/**
 * Rotary tables for positions (B, T) i32 and head dimension D, the angles position · θ_j with
 * θ_j = 10000^(−2j/D) for j < D/2: cos (B, 1, T, D/2) and sinSigned (B, 1, T, 2, D/2) = (−sin, +sin),
 * the sign each half of the rotation takes (ops.rope); computed once a forward, shared by the layers.
 */
export function rotaryTables(positions: Tensor, D: number): { cos: Tensor; sinSigned: Tensor } {
  check(D % 2 === 0, 'rotaryTables', () => `rotary positions need an even head dimension, got ${D}`);
  const [B, T] = positions.shape;
  const theta = tensor(Float32Array.from({ length: D / 2 }, (_, j) => Math.pow(10000, (-2 * j) / D)), { shape: [1, 1, 1, 1, D / 2] });
  const sign = tensor([-1, 1], { shape: [1, 1, 1, 2, 1] });
  const pos = reshape(positions, [B, 1, T, 1, 1]); // i32, converted to f32 in the map
  // one map each (constants: no gradient), the angle computed in f32 as position · θ
  return { cos: reshape(fmap('cos(a * b)', pos, theta), [B, 1, T, D / 2]), sinSigned: fmap('sin(a * b) * c', pos, theta, sign) };
}

/** ViT → projector → causal decoder over text with image patch tokens at the `<image>` places. */
export class VisionLanguageModel extends Module {
  readonly config: VlmConfig;
  readonly vision: ViTEncoder;
  readonly projector: Linear;
  readonly decoder: DecoderLM;

  /** Builds the model with weights drawn from `config.seed` (this re-seeds the engine's global RNG). */
  constructor(config: VlmConfig) {
    super();
    validateConfig(config);
    this.config = { ...config };
    manualSeed(config.seed);
    const c = config;
    try {
      this.vision = this.addModule('vision', new ViTEncoder({
        imageSize: c.imageSize, patchSize: c.patchSize, channels: c.channels, dim: c.visionDim, layers: c.visionLayers, heads: c.visionHeads,
        mlpRatio: c.mlpRatio, dropout: c.dropout, std: c.initStd, eps: c.layerNormEps,
      }));
      this.projector = this.addModule('projector', new Linear(c.visionDim * this.mergeSize ** 2, c.dim, { std: c.initStd }));
      this.decoder = this.addModule('decoder', new DecoderLM({
        vocabSize: c.vocabSize, maxPositions: c.maxPositions, dim: c.dim, layers: c.layers, heads: c.heads,
        mlpRatio: c.mlpRatio, dropout: c.dropout, std: c.initStd, eps: c.layerNormEps, rope: c.positionEncoding === 'rope',
      }));
    } catch (e) {
      throw this.abandon(e);
    }
  }

  /** ViT tokens merged per side into one decoder position (config.mergeSize, default 1). */
  get mergeSize(): number {
    return this.config.mergeSize ?? 1;
  }

  /** Pixels per side of the image cell behind one decoder position: patchSize · mergeSize. */
  get cellSize(): number {
    return this.config.patchSize * this.mergeSize;
  }

  /** Patch positions per image in the decoder (P = (imageSize / cellSize)²). */
  get patchesPerImage(): number {
    return this.vision.numPatches / this.mergeSize ** 2;
  }

  // ---- host side: layouts and batches ---------------------------------------------------------

  /** The expanded layout of one token sequence (one `<image>` per image → P positions each). */
  layout(tokens: readonly number[]): SequenceLayout {
    const P = this.patchesPerImage;
    const img = this.config.imageTokenId;
    const out: SequenceLayout = { ids: [], visual: [], source: [], positionOf: [], images: 0 };
    tokens.forEach((id, i) => {
      check(Number.isInteger(id) && id >= 0 && id < this.config.vocabSize, 'VisionLanguageModel.layout',
        () => `token ${i} has id ${id}, outside the vocabulary [0, ${this.config.vocabSize})`);
      out.positionOf.push(out.ids.length);
      const n = id === img ? P : 1;
      for (let k = 0; k < n; k++) {
        out.ids.push(id);
        out.visual.push(id === img ? 1 : 0);
        out.source.push(i);
      }
      if (id === img) out.images++;
    });
    return out;
  }

  /**
   * Pads a batch of token sequences (each with one `<image>` per image) into (B, T) arrays of
   * expanded positions. The images the batch needs are all `<image>`s in order: sequence 0 first.
   */
  prepareBatch(sequences: readonly (readonly number[])[], opts: BatchOptions = {}): VlmBatch {
    const op = 'VisionLanguageModel.prepareBatch';
    check(sequences.length > 0, op, () => 'no sequences given');
    const layouts = sequences.map((s) => this.layout(s));
    const longest = Math.max(...layouts.map((l) => l.ids.length));
    const T = opts.length ?? longest;
    check(T >= longest, op, () => `length ${T} is shorter than the longest expanded sequence (${longest} positions)`);
    check(T <= this.config.maxPositions, op, () => `the batch needs ${T} positions but the decoder has ${this.config.maxPositions} (images count P = ${this.patchesPerImage} positions each)`);
    check(T >= 1, op, () => 'every sequence is empty');
    const B = layouts.length;
    const padSide = opts.padSide ?? 'right';
    const P = this.patchesPerImage;
    const batch: VlmBatch = {
      B, T, padSide, layouts, padBefore: [],
      ids: new Int32Array(B * T).fill(this.config.padId), positions: new Int32Array(B * T), attention: new Float32Array(B * T),
      visual: new Float32Array(B * T), imageRow: new Int32Array(B * T).fill(-1), numImages: 0,
    };
    let image = 0;
    layouts.forEach((l, b) => {
      const pad = padSide === 'left' ? T - l.ids.length : 0;
      batch.padBefore.push(pad);
      let patch = 0;
      for (let j = 0; j < l.ids.length; j++) {
        const slot = b * T + pad + j;
        batch.ids[slot] = l.ids[j];
        batch.positions[slot] = j;
        batch.attention[slot] = 1;
        if (l.visual[j]) {
          batch.visual[slot] = 1;
          batch.imageRow[slot] = image * P + patch;
          if (++patch === P) {
            patch = 0;
            image++;
          }
        }
      }
    });
    batch.numImages = image;
    return batch;
  }

  /**
   * Per-original-token values (a mask over each input sequence, e.g. "response tokens") spread onto
   * the batch's (B, T) slots: each expanded position takes its source token's value, padding `fill`.
   */
  expandPerToken(batch: VlmBatch, values: readonly (readonly number[])[], fill = 0): number[][] {
    check(values.length === batch.B, 'VisionLanguageModel.expandPerToken', () => `expected ${batch.B} rows of values, got ${values.length}`);
    return batch.layouts.map((l, b) => {
      check(values[b].length === l.positionOf.length, 'VisionLanguageModel.expandPerToken',
        () => `row ${b}: expected ${l.positionOf.length} values (one per token), got ${values[b].length}`);
      const row = new Array<number>(batch.T).fill(fill);
      for (let j = 0; j < l.ids.length; j++) row[batch.padBefore[b] + j] = values[b][l.source[j]];
      return row;
    });
  }

  /** m_t of VM-CPT on the batch's slots: 1 on text tokens, 0 on image patches and padding, (B, T). */
  textMask(batch: VlmBatch): number[][] {
    return Array.from({ length: batch.B }, (_, b) =>
      Array.from({ length: batch.T }, (_, j) => batch.attention[b * batch.T + j] * (1 - batch.visual[b * batch.T + j])));
  }

  /** GPU inputs of a batch (create them inside the caller's tidy()). images: (N, C, H, W) in order of appearance. */
  toInputs(batch: VlmBatch, images: Tensor | null): VlmInputs {
    const op = 'VisionLanguageModel.toInputs';
    const { B, T } = batch;
    const c = this.config;
    if (batch.numImages > 0) {
      check(images !== null, op, () => `the batch has ${batch.numImages} <image> place(s) but no images were given`);
      check(images.ndim === 4 && images.shape[0] === batch.numImages && images.shape[1] === c.channels && images.shape[2] === c.imageSize && images.shape[3] === c.imageSize, op,
        () => `images must be (N, C, H, W) = ${fmtShape([batch.numImages, c.channels, c.imageSize, c.imageSize])} (one per <image> place, in order), got ${images.describe()}`);
    } else {
      check(images === null || images.shape[0] === 0, op, () => `the batch has no <image> place but ${images!.describe()} images were given`);
    }
    const withImages = batch.numImages > 0;
    const gather = withImages ? Int32Array.from(batch.imageRow, (r, i) => (r < 0 ? i : B * T + r)) : null;
    const padded = batch.attention.some((a) => a === 0);
    return {
      tokens: tensor(batch.ids, { shape: [B, T], dtype: 'i32' }),
      positions: tensor(batch.positions, { shape: [B, T], dtype: 'i32' }),
      images: withImages ? images : null,
      gatherIndex: gather ? tensor(gather, { shape: [B * T], dtype: 'i32' }) : null,
      keyValid: padded ? tensor(batch.attention, { shape: [B, T] }) : null,
    };
  }

  // ---- forward ---------------------------------------------------------------------------------

  /** images is (N, C, H, W) in [0, 1] → projected patch tokens (N, P, dim), cells in row-major order. */
  imageTokens(images: Tensor): Tensor {
    checkTensor('VisionLanguageModel.imageTokens', 'images', images);
    const { pixelMean, pixelStd } = this.config;
    const x = pixelMean === undefined && pixelStd === undefined ? images : images.sub(pixelMean ?? 0).mul(1 / (pixelStd ?? 1));
    return this.projector.forward(this.mergePatches(this.vision.forward(x)));
  }

  /**
   * ViT tokens (N, g·g, Cv), g patches per side, → (N, (g/k)², k²·Cv): each k × k block of
   * neighbouring patches concatenated (row-major within the block) into one token. k = 1: as given.
   */
  mergePatches(tokens: Tensor): Tensor {
    const k = this.mergeSize;
    if (k === 1) return tokens;
    const [N, , Cv] = tokens.shape;
    const g = this.vision.patchEmbed.patchesPerSide;
    const m = g / k;
    // (N, m, k, m, k, Cv) → (N, m, m, k, k, Cv): block rows, block cols, then the block's own patches
    return reshape(permute(reshape(tokens, [N, m, k, m, k, Cv]), [0, 1, 3, 2, 4, 5]), [N, m * m, k * k * Cv]);
  }

  /**
   * The decoder's input sequence (B, T, C): token embeddings, with every image slot replaced by its
   * projected patch token. One gather over [token embeddings ; image tokens] (its backward is a
   * deterministic scatter-add, so both the embedding table and the vision tower get gradients).
   */
  inputEmbeddings(inputs: VlmInputs): Tensor {
    const tok = this.decoder.embedTokens(inputs.tokens); // (B, T, C)
    if (!inputs.images || !inputs.gatherIndex) return tok;
    const [B, T, C] = tok.shape;
    const given = inputs.imageTokens;
    if (given) {
      const [N] = inputs.images.shape;
      check(given.ndim === 3 && given.shape[0] === N && given.shape[1] === this.patchesPerImage && given.shape[2] === C, 'VisionLanguageModel.forward',
        () => `inputs.imageTokens must be imageTokens(images), (N, P, C) = ${fmtShape([N, this.patchesPerImage, C])}, got ${given.describe()}`);
    }
    const img = reshape(given ?? this.imageTokens(inputs.images), [-1, C]); // (N·P, C)
    const table = concat([reshape(tok, [B * T, C]), img], 0);
    return reshape(indexSelect(table, 0, inputs.gatherIndex), [B, T, C]);
  }

  /**
   * Logits (B, T, V) of a batch; with `lastOnly`, only those of the last slot, (B, V) (generation);
   * with `logitsAt` (K,) i32 indices into the flattened (B·T) slots, only those rows, (K, V): SFT and
   * RL need logits on response positions only, and the output head and its log-softmax are a large
   * share of the work on image and prompt positions.
   * With `cache`, the batch continues the cached sequences: its slots take positions
   * [cache.length, cache.length + T); run under noGrad().
   */
  forward(inputs: VlmInputs, opts: { cache?: KVCache; lastOnly?: boolean; logitsAt?: Tensor } = {}): Tensor {
    check(typeof inputs === 'object' && inputs !== null, 'VisionLanguageModel.forward', () => 'inputs must be the object of toInputs() ({ tokens, positions, images, gatherIndex, keyValid })');
    checkTensor('VisionLanguageModel.forward', 'inputs.tokens', inputs.tokens);
    checkTensor('VisionLanguageModel.forward', 'inputs.positions', inputs.positions);
    checkOptions('VisionLanguageModel.forward', opts);
    const x = this.inputEmbeddings(inputs);
    const [B, T] = inputs.tokens.shape;
    const cache = opts.cache;
    const masks: AttentionMasks = { causal: true };
    if (cache) {
      check(cache.batch === B && cache.length + T <= cache.capacity, 'VisionLanguageModel.forward',
        () => `the cache (batch ${cache.batch}, ${cache.length} of ${cache.capacity} positions used) cannot take a (B, T) = ${fmtShape([B, T])} batch`);
      if (inputs.keyValid) assign(slice(cache.keyValid, 1, cache.length, cache.length + T), inputs.keyValid);
      masks.keyValid = cache.keyValidView(T);
    } else if (inputs.keyValid) {
      masks.keyValid = inputs.keyValid;
    }
    let h = this.decoder.forwardEmbeddings(x, inputs.positions, masks, cache);
    if (cache) cache.length += T;
    check(!(opts.lastOnly && opts.logitsAt), 'VisionLanguageModel.forward', () => 'lastOnly and logitsAt exclude each other');
    if (opts.lastOnly) h = reshape(slice(h, 1, T - 1, T), [B, h.shape[2]]);
    else if (opts.logitsAt) {
      const at = opts.logitsAt;
      check(at.dtype === 'i32' && at.ndim === 1, 'VisionLanguageModel.forward', () => `logitsAt must be a (K,) i32 tensor of slot indices in [0, B·T = ${B * T}), got ${at.describe()}`);
      h = indexSelect(reshape(h, [B * T, h.shape[2]]), 0, at);
    }
    return this.decoder.logits(h);
  }

  /** An empty KV cache for `batch` sequences of up to `capacity` positions (dispose() it). */
  createCache(batch: number, capacity: number): KVCache {
    check(capacity <= this.config.maxPositions, 'VisionLanguageModel.createCache',
      () => `capacity ${capacity} exceeds the decoder's ${this.config.maxPositions} positions`);
    return new KVCache(this.config.layers, batch, this.config.heads, capacity, this.config.dim / this.config.heads);
  }
}

/** Throws a TrimpiError naming the bad field of a config. */
export function validateConfig(c: VlmConfig): void {
  const op = 'VlmConfig';
  check(typeof c === 'object' && c !== null && !Array.isArray(c), op, () => `the config must be an object, got ${c === null ? 'null' : typeof c}`);
  const ints: (keyof VlmConfig)[] = ['vocabSize', 'imageTokenId', 'padId', 'imageSize', 'patchSize', 'channels', 'visionDim', 'visionLayers',
    'visionHeads', 'dim', 'layers', 'heads', 'maxPositions', 'seed'];
  for (const k of ints) check(Number.isInteger(c[k]) && (c[k] as number) >= 0, op, () => `${k} must be a non-negative integer, got ${String(c[k])}`);
  for (const k of ['layers', 'visionLayers'] as const) check(c[k] <= MAX_LAYERS, op, () => `${k} must be at most ${MAX_LAYERS}, got ${c[k]}`);
  for (const k of ['mlpRatio', 'dropout', 'layerNormEps', 'initStd'] as const) check(typeof c[k] === 'number' && Number.isFinite(c[k]), op, () => `${k} must be a number, got ${String(c[k])}`);
  check(c.imageTokenId < c.vocabSize && c.padId < c.vocabSize, op, () => `imageTokenId ${c.imageTokenId} and padId ${c.padId} must be < vocabSize ${c.vocabSize}`);
  check(c.imageSize % c.patchSize === 0, op, () => `imageSize ${c.imageSize} must be a multiple of patchSize ${c.patchSize}`);
  check(c.dim % c.heads === 0 && c.visionDim % c.visionHeads === 0, op,
    () => `widths must be multiples of the head counts: dim ${c.dim} / heads ${c.heads}, visionDim ${c.visionDim} / visionHeads ${c.visionHeads}`);
  check(c.dim / c.heads <= 128 && c.visionDim / c.visionHeads <= 128, op, () => 'the attention kernel supports head dimensions up to 128');
  check(c.dropout >= 0 && c.dropout < 1, op, () => `dropout must be in [0, 1), got ${c.dropout}`);
  check(c.pixelMean === undefined || Number.isFinite(c.pixelMean), op, () => `pixelMean must be a finite number, got ${String(c.pixelMean)}`);
  check(c.pixelStd === undefined || (Number.isFinite(c.pixelStd) && c.pixelStd > 0), op, () => `pixelStd must be a positive number, got ${String(c.pixelStd)}`);
  check(c.positionEncoding === undefined || c.positionEncoding === 'learned' || c.positionEncoding === 'rope', op,
    () => `positionEncoding must be 'learned' or 'rope', got ${String(c.positionEncoding)}`);
  check(c.positionEncoding !== 'rope' || (c.dim / c.heads) % 2 === 0, op, () => `rotary positions need an even head dimension, got ${c.dim} / ${c.heads}`);
  const k = c.mergeSize ?? 1;
  check(Number.isInteger(k) && k >= 1, op, () => `mergeSize must be a positive integer, got ${String(c.mergeSize)}`);
  check(c.patchSize > 0 && (c.imageSize / c.patchSize) % k === 0, op,
    () => `mergeSize ${k} must divide the ${c.imageSize / c.patchSize} patches per side (imageSize ${c.imageSize} / patchSize ${c.patchSize})`);
}
