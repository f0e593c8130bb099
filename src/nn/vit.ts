// The vision encoder: patch embedding, learned positions, pre-LN bidirectional blocks (a ViT), and the
// projector from the ViT width to the decoder width.
import { check, checkNumber } from '../gpu/errors.js';
import { permute, randn, reshape } from '../tensor/ops.js';
import { Tensor } from '../tensor/tensor.js';
import { TransformerBlock, blockStack, runBlocks } from './attention.js';
import { LayerNorm, Linear, MAX_LAYERS, Module, checkSize, checkStd } from './module.js';
import { checkTensor } from '../tensor/validate.js';

/** Cuts images into non-overlapping patch × patch squares and embeds each with one linear map. */
export class PatchEmbed extends Module {
  readonly proj: Linear;
  readonly patchesPerSide: number;

  constructor(
    readonly imageSize: number,
    readonly patchSize: number,
    readonly channels: number,
    readonly dim: number,
    opts: { std?: number } = {},
  ) {
    super();
    for (const [name, v] of [['imageSize', imageSize], ['patchSize', patchSize], ['channels', channels], ['dim', dim]] as const) checkSize('PatchEmbed', name, v);
    check(imageSize % patchSize === 0, 'PatchEmbed', () => `image size ${imageSize} must be a multiple of the patch size ${patchSize}`);
    this.patchesPerSide = imageSize / patchSize;
    this.proj = this.addModule('proj', new Linear(channels * patchSize * patchSize, dim, { std: opts.std }));
  }

  /** Patches per image, P = (imageSize / patchSize)². */
  get numPatches(): number {
    return this.patchesPerSide ** 2;
  }

  /** images is (N, C, H, W) → (N, P, dim), patches in row-major order; each patch flattened as (C, p, p). */
  forward(images: Tensor): Tensor {
    checkTensor('PatchEmbed.forward', 'images', images);
    const S = this.imageSize;
    const p = this.patchSize;
    const g = this.patchesPerSide;
    check(images.ndim === 4 && images.shape[1] === this.channels && images.shape[2] === S && images.shape[3] === S, 'PatchEmbed.forward',
      () => `images must be (N, ${this.channels}, ${S}, ${S}), got ${images.describe()}`);
    const N = images.shape[0];
    // (N, C, g, p, g, p) → (N, g, g, C, p, p) → (N, P, C·p·p): the reshape copies once
    const patches = reshape(permute(reshape(images, [N, this.channels, g, p, g, p]), [0, 2, 4, 1, 3, 5]), [N, g * g, this.channels * p * p]);
    return this.proj.forward(patches);
  }
}

/** Shape of a ViTEncoder: image and patch size, channels, width, depth, heads. */
export interface ViTOptions {
  imageSize: number;
  patchSize: number;
  channels: number;
  dim: number;
  layers: number;
  heads: number;
  mlpRatio?: number;
  dropout?: number;
  std?: number;
  eps?: number;
}

/** ViT encoder: images (N, C, H, W) → patch tokens (N, P, dim), bidirectional attention, final LN. */
export class ViTEncoder extends Module {
  readonly patchEmbed: PatchEmbed;
  /** Learned positions (P, dim). */
  readonly positions: Tensor;
  readonly blocks: TransformerBlock[];
  readonly lnFinal: LayerNorm;

  constructor(readonly opts: ViTOptions) {
    super();
    const op = 'ViTEncoder';
    check(typeof opts === 'object' && opts !== null, op, () => 'options must be an object');
    for (const k of ['imageSize', 'patchSize', 'channels', 'dim', 'heads'] as const) checkSize(op, k, opts[k]);
    checkNumber(op, 'layers', opts.layers, { integer: true, min: 0, max: MAX_LAYERS });
    check(opts.imageSize % opts.patchSize === 0, op, () => `image size ${opts.imageSize} must be a multiple of the patch size ${opts.patchSize}`);
    check(opts.dim % opts.heads === 0, op, () => `width ${opts.dim} must be a multiple of the number of heads ${opts.heads}`);
    checkStd(op, 'std', opts.std);
    const std = opts.std ?? 0.02;
    try {
      this.patchEmbed = this.addModule('patch', new PatchEmbed(opts.imageSize, opts.patchSize, opts.channels, opts.dim, { std }));
      this.positions = this.addParameter('pos', randn([this.patchEmbed.numPatches, opts.dim], { std }), { decay: false });
      this.blocks = blockStack((name, block) => this.addModule(name, block), { ...opts, std });
      this.lnFinal = this.addModule('ln_f', new LayerNorm(opts.dim, opts.eps));
    } catch (e) {
      throw this.abandon(e);
    }
  }

  get numPatches(): number {
    return this.patchEmbed.numPatches;
  }

  /** images is (N, C, H, W) → (N, P, dim). */
  forward(images: Tensor): Tensor {
    checkTensor('ViTEncoder.forward', 'images', images);
    const x = this.patchEmbed.forward(images).add(this.positions); // (N, P, dim)
    return runBlocks(this.blocks, this.lnFinal, x, { causal: false });
  }
}
