// Checkpoints: the safetensors encoding with per-tensor CRC32s (read back here and by an independent
// Python/NumPy reader), a model round trip, a resumed run continuing with exactly the losses of an
// uninterrupted one, bad files refused with messages that say what is wrong, and verified,
// all-or-nothing loading: corrupt files and lying configs leave the model and optimizer untouched.
// (Crash safety of saves: checkpoint_crash.test.ts.)
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as t from '../../src/index.js';
import { Example, makeExamples, microBatches, vmcptLossOf } from './fixtures.js';

const { nn } = t;
const tiny = (o: Partial<t.nn.VlmConfig> = {}): t.nn.VlmConfig => ({ ...nn.preset('tiny', 50).model, ...o });

let root: string;
beforeAll(async () => {
  await t.init();
  root = mkdtempSync(join(tmpdir(), 'trimpi-ckpt-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function hasNumpy(): boolean {
  try {
    execFileSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('safetensors', () => {
  it('encodes the documented layout: LE header length, JSON header padded to 8 bytes, raw LE data', () => {
    const tensors = new Map<string, t.nn.HostTensor>([
      ['a.weight', { dtype: 'f32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, -6.5]) }],
      ['b', { dtype: 'i32', shape: [3], data: Int32Array.from([7, -8, 9]) }],
      ['empty', { dtype: 'f32', shape: [0, 4], data: new Float32Array(0) }],
    ]);
    const bytes = nn.encodeSafetensors(tensors, { step: '3' });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + n) % 8).toBe(0);
    const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString());
    expect(header['a.weight']).toEqual({ dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] });
    expect(header.b).toEqual({ dtype: 'I32', shape: [3], data_offsets: [24, 36] });
    // a CRC32 of each tensor's bytes in the metadata (verified and stripped by the decoder)
    const crc = (x: Float32Array | Int32Array): string => nn.crc32(new Uint8Array(x.buffer, x.byteOffset, x.byteLength)).toString(16).padStart(8, '0');
    expect(header.__metadata__).toEqual({ step: '3', 'crc32.a.weight': crc(tensors.get('a.weight')!.data), 'crc32.b': crc(tensors.get('b')!.data), 'crc32.empty': '00000000' });
    const back = nn.decodeSafetensors(bytes);
    expect(back.metadata).toEqual({ step: '3' });
    expect(back.checksummed).toBe(true);
    for (const [k, v] of tensors) expect(back.tensors.get(k)).toEqual(v);
    expect(nn.crc32(Buffer.from('123456789'))).toBe(0xcbf43926); // the CRC-32/IEEE check value
    const plain = nn.encodeSafetensors(tensors, { step: '3' }, { checksums: false });
    expect(nn.decodeSafetensors(plain)).toEqual({ tensors, metadata: { step: '3' }, checksummed: false });
  });

  it('is readable by an independent Python reader (NumPy)', async (ctx) => {
    if (!hasNumpy()) ctx.skip();
    const path = join(root, 'py.safetensors');
    nn.writeSafetensors(path, new Map([
      ['x', { dtype: 'f32' as const, shape: [2, 2], data: Float32Array.from([0.5, -1, 3.25, 1e-3]) }],
      ['ids', { dtype: 'i32' as const, shape: [2], data: Int32Array.from([-5, 123456]) }],
    ]));
    const script = [
      'import json, struct, sys, numpy as np',
      'b = open(sys.argv[1], "rb").read()',
      '(n,) = struct.unpack("<Q", b[:8]); h = json.loads(b[8:8 + n]); data = b[8 + n:]',
      'dt = {"F32": "<f4", "I32": "<i4"}',
      'out = {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], dtype=dt[v["dtype"]]).reshape(v["shape"]).tolist() for k, v in h.items() if k != "__metadata__"}',
      'print(json.dumps(out))',
    ].join('\n');
    const out = JSON.parse(execFileSync('python3', ['-c', script, path]).toString());
    expect(out.x).toEqual([[0.5, -1], [3.25, Math.fround(1e-3)]]);
    expect(out.ids).toEqual([-5, 123456]);
  });

  it('refuses malformed files with the reason', () => {
    const good = nn.encodeSafetensors(new Map([['w', { dtype: 'f32' as const, shape: [4], data: new Float32Array(4) }]]));
    expect(() => nn.decodeSafetensors(good.subarray(0, 5), 'f')).toThrow(/readSafetensors: f: the file is 5 bytes long, too short/);
    expect(() => nn.decodeSafetensors(good.subarray(0, good.length - 4), 'f')).toThrow(/run past the end of the data .*truncated/);
    const huge = Uint8Array.from(good);
    new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
    expect(() => nn.decodeSafetensors(huge, 'f')).toThrow(/header length field says 1099511627776 bytes/);
    const badJson = Uint8Array.from(good);
    badJson[8] = 0x7b + 1; // '|' instead of '{'
    expect(() => nn.decodeSafetensors(badJson, 'f')).toThrow(/the header is not valid JSON/);
    const f16 = Buffer.from(Buffer.from(good).toString('latin1').replace('"F32"', '"F16"'), 'latin1');
    expect(() => nn.decodeSafetensors(f16, 'f')).toThrow(/tensor w has dtype "F16"; supported: F32, I32/);
    const extra = new Uint8Array(good.length + 4);
    extra.set(good);
    expect(() => nn.decodeSafetensors(extra, 'f')).toThrow(/cover 16 bytes but the data section has 20/);
  });
});

describe('checkpoints', () => {
  it('round trip: a model rebuilt from its checkpoint gives the same logits bit for bit; files are replaced atomically', async () => {
    const m = new nn.VisionLanguageModel(tiny({ seed: 2 }));
    const dir = join(root, 'rt');
    const first = await nn.saveCheckpoint(dir, m, { extra: { note: 'first' } });
    await nn.saveCheckpoint(dir, m, { extra: { note: 'second' } }); // over an existing checkpoint
    const manifest = nn.readManifest(dir);
    expect(manifest.files.model).toMatch(/^model-step0-[0-9a-f]{8}\.safetensors$/);
    expect(manifest.files.model).not.toBe(first.files.model); // versioned: a save never overwrites the live files
    expect(readdirSync(dir).sort()).toEqual(['config.json', manifest.files.model]); // the previous files and temporaries are gone
    expect(manifest.extra).toEqual({ note: 'second' });
    expect(manifest.config).toEqual(m.config);
    const m2 = nn.loadVisionLanguageModel(dir);
    const batch = m.prepareBatch([[1, 4, 9, 10, 11], [1, 12]]);
    const images = t.rand([1, 3, 16, 16], { seed: 1 });
    const logits = async (model: t.nn.VisionLanguageModel): Promise<Float32Array> => {
      const out = t.noGrad(() => t.tidy(() => model.forward(model.toInputs(batch, images))));
      const a = (await out.toArray()) as Float32Array;
      out.dispose();
      return a;
    };
    expect(await logits(m2)).toEqual(await logits(m));
    images.dispose();
    m.dispose();
    m2.dispose();
  });

  it('a rotary-position model loads into a longer context (the same logits); a learned-position one is refused', async () => {
    const dir = join(root, 'ctx');
    const logits = async (model: t.nn.VisionLanguageModel): Promise<Float32Array> => {
      const batch = model.prepareBatch([[5, 8, 9, 10, 11, 7, 3], [6, 12]]);
      const out = t.noGrad(() => t.tidy(() => model.forward(model.toInputs(batch, null))));
      const a = (await out.toArray()) as Float32Array;
      out.dispose();
      return a;
    };
    const short = new nn.VisionLanguageModel(tiny({ seed: 3, positionEncoding: 'rope', maxPositions: 64 }));
    await nn.saveCheckpoint(dir, short);
    const long = new nn.VisionLanguageModel(tiny({ seed: 4, positionEncoding: 'rope', maxPositions: 256 }));
    nn.loadCheckpoint(dir, long);
    expect(await logits(long)).toEqual(await logits(short));
    const loaded = nn.loadVisionLanguageModel(dir, { maxPositions: 512 });
    expect(loaded.config.maxPositions).toBe(512);
    expect(await logits(loaded)).toEqual(await logits(short));
    const learned = new nn.VisionLanguageModel(tiny({ seed: 3, maxPositions: 64 }));
    await nn.saveCheckpoint(dir, learned);
    const learnedLong = new nn.VisionLanguageModel(tiny({ seed: 3, maxPositions: 256 }));
    expect(() => nn.loadCheckpoint(dir, learnedLong)).toThrow(/different config: maxPositions 64 \(the model has 256\)/);
    expect(() => nn.loadVisionLanguageModel(dir, { maxPositions: 256 })).toThrow(/has learned positions \(a table of 64\): its context cannot become 256/);
    expect(nn.loadVisionLanguageModel(dir, { maxPositions: 64 }).dispose()).toBeUndefined();
    for (const m of [short, long, loaded, learned, learnedLong]) m.dispose();
  });

  it('a resumed run continues with the same losses as an uninterrupted one (dropout on, AdamW state restored)', async () => {
    const steps = 8;
    const cut = 4;
    const opts = { lr: 5e-3, minLr: 5e-4, warmupSteps: 3, totalSteps: steps, weightDecay: 0.1, seed: 9 };
    const setup = (seed: number): { m: t.nn.VisionLanguageModel; tr: t.nn.Trainer<Example>; exs: Example[] } => {
      const m = new nn.VisionLanguageModel(tiny({ seed, dropout: 0.1 }));
      const exs = microBatches(m, makeExamples(m, 4, 17), 2); // two micro-batches per step
      return { m, tr: new nn.Trainer<Example>(m, opts), exs };
    };
    const run = async (s: ReturnType<typeof setup>, n: number): Promise<number[]> => {
      const losses: number[] = [];
      for (let i = 0; i < n; i++) {
        const r = s.tr.trainStep(s.exs, vmcptLossOf(s.m));
        losses.push(await r.loss.item());
        r.loss.dispose();
        r.gradNorm.dispose();
      }
      return losses;
    };
    const free = (s: ReturnType<typeof setup>): void => {
      s.exs.forEach((e) => e.images?.dispose());
      s.tr.dispose();
      s.m.dispose();
    };
    const a = setup(1);
    const whole = await run(a, steps);
    free(a);

    const b = setup(1);
    const first = await run(b, cut);
    const dir = join(root, 'resume');
    await nn.saveCheckpoint(dir, b.m, { optimizer: b.tr.optimizer, extra: { trainer: { ...opts } } });
    free(b);
    const saved = nn.readManifest(dir);
    expect(readdirSync(dir).sort()).toEqual(['config.json', saved.files.model, saved.files.optimizer!].sort());

    const c = setup(99); // different initial weights: everything must come from the checkpoint
    const manifest = nn.loadCheckpoint(dir, c.m, { optimizer: c.tr.optimizer });
    expect(manifest.step).toBe(cut);
    expect(c.tr.step).toBe(cut);
    const rest = await run(c, steps - cut);
    free(c);
    expect([...first, ...rest]).toEqual(whole);
  });

  it('refuses bad checkpoints with a clear message', async () => {
    const m = new nn.VisionLanguageModel(tiny());
    const dir = join(root, 'bad');
    const tr = new nn.Trainer(m, { lr: 1e-3, totalSteps: 10 });
    const modelFile = join(dir, (await nn.saveCheckpoint(dir, m)).files.model);
    const pristine = readFileSync(modelFile);
    const edit = (fn: (tensors: Map<string, t.nn.HostTensor>) => void, meta?: Record<string, string>): void => {
      const st = nn.decodeSafetensors(pristine);
      fn(st.tensors);
      writeFileSync(modelFile, nn.encodeSafetensors(st.tensors, meta ?? st.metadata));
    };
    try {
      expect(() => nn.loadCheckpoint(join(root, 'nowhere'), m)).toThrow(/loadCheckpoint: .*nowhere\/config.json does not exist/);

      edit((ts) => ts.set('decoder.blocks.0.attn.qkv.weight', { dtype: 'f32', shape: [64, 192], data: new Float32Array(64 * 192) }));
      expect(() => nn.loadCheckpoint(dir, m)).toThrow(/tensor decoder.blocks.0.attn.qkv.weight in .*model-step0-[0-9a-f]{8}\.safetensors has shape \[64, 192\] but the model expects \[32, 96\]/);

      edit((ts) => ts.set('decoder.ln_f.bias', { dtype: 'i32', shape: [32], data: new Int32Array(32) }));
      expect(() => nn.loadCheckpoint(dir, m)).toThrow(/tensor decoder.ln_f.bias in .* has dtype i32 but the model expects f32/);

      edit((ts) => ts.delete('projector.weight'));
      expect(() => nn.loadCheckpoint(dir, m)).toThrow(/missing 1 tensor\(s\) in .*model-step0-[0-9a-f]{8}\.safetensors: projector.weight/);

      edit((ts) => ts.set('decoder.lm_head.weight', { dtype: 'f32', shape: [1], data: new Float32Array(1) }));
      expect(() => nn.loadCheckpoint(dir, m)).toThrow(/unexpected tensor\(s\) in .* that the model does not have: decoder.lm_head.weight/);

      edit(() => undefined, { trimpi: nn.CHECKPOINT_FORMAT, step: '7' });
      expect(() => nn.loadCheckpoint(dir, m)).toThrow(/model-step0-[0-9a-f]{8}\.safetensors is from step 7 but config.json says step 0 \(an interrupted save/);

      writeFileSync(modelFile, pristine.subarray(0, pristine.length - 100));
      expect(() => nn.loadCheckpoint(dir, m)).toThrow(/readSafetensors: .*model-step0-[0-9a-f]{8}\.safetensors: tensor .* run past the end of the data/);

      writeFileSync(modelFile, pristine);
      expect(() => nn.loadCheckpoint(dir, m, { optimizer: tr.optimizer })).toThrow(/has no optimizer state .*cannot resume training from it/);

      const wide = new nn.VisionLanguageModel(tiny({ dim: 64 }));
      expect(() => nn.loadCheckpoint(dir, wide)).toThrow(/was saved from a model with a different config: dim 32 \(the model has 64\)/);
      wide.dispose();

      const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, format: 'something-else' }));
      expect(() => nn.loadCheckpoint(dir, m)).toThrow(/is not a trimpi-checkpoint manifest/);
      writeFileSync(join(dir, 'config.json'), '{"format": ');
      expect(() => nn.loadCheckpoint(dir, m)).toThrow(/config.json is not valid JSON/);
    } finally {
      tr.dispose();
      m.dispose();
    }
  });
});

describe('verified, all-or-nothing loading', () => {
  /** Every parameter, AdamW moment and bias correction, and the step, read back. */
  const state = async (m: t.nn.Module, opt: t.nn.AdamW): Promise<Map<string, unknown>> => {
    const out = new Map<string, unknown>();
    for (const [name, p] of m.namedParameters()) {
      out.set(name, await p.value.toArray());
      const { m: m1, v } = opt.moments(p.value);
      out.set(`m.${name}`, await m1.toArray());
      out.set(`v.${name}`, await v.toArray());
    }
    out.set('bias_correction', await opt.biasCorrection.toArray());
    out.set('step', opt.step);
    return out;
  };
  /** A safetensors file's header, its data section, and a writer for an edited header. */
  const split = (bytes: Uint8Array): { header: Record<string, { data_offsets: [number, number] }>; data: Uint8Array } => {
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    return { header: JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString()), data: bytes.slice(8 + n) };
  };
  const join2 = (header: unknown, data: Uint8Array): Uint8Array => {
    let json = JSON.stringify(header);
    json += ' '.repeat((8 - ((json.length + 8) % 8)) % 8);
    const out = new Uint8Array(8 + json.length + data.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
    out.set(Buffer.from(json), 8);
    out.set(data, 8 + json.length);
    return out;
  };

  it('refuses corrupt files and lying configs with a named TrimpiError, leaving model and optimizer as they were', async () => {
    const m = new nn.VisionLanguageModel(tiny({ seed: 5 }));
    const exs = microBatches(m, makeExamples(m, 2, 8), 2);
    const tr = new nn.Trainer<Example>(m, { lr: 1e-2, totalSteps: 10, seed: 1 });
    const train = (): void => t.tidy(() => { tr.trainStep(exs, vmcptLossOf(m)); });
    const dir = join(root, 'verify');
    try {
      train();
      train();
      const saved = await nn.saveCheckpoint(dir, m, { optimizer: tr.optimizer });
      train(); // the live model and optimizer now differ from the checkpoint: a load would change them
      const before = await state(m, tr.optimizer);
      const modelFile = join(dir, saved.files.model);
      const optFile = join(dir, saved.files.optimizer!);
      const configFile = join(dir, 'config.json');
      const pristine = { model: readFileSync(modelFile), opt: readFileSync(optFile), config: readFileSync(configFile, 'utf8') };
      const restore = (): void => {
        writeFileSync(modelFile, pristine.model);
        writeFileSync(optFile, pristine.opt);
        writeFileSync(configFile, pristine.config);
      };
      const refused = async (what: string, re: RegExp, load = (): unknown => nn.loadCheckpoint(dir, m, { optimizer: tr.optimizer })): Promise<void> => {
        let err: unknown = null;
        try {
          load();
        } catch (e) {
          err = e;
        }
        expect(err, what).toBeInstanceOf(t.TrimpiError);
        expect((err as Error).message, what).toMatch(re);
        expect(await state(m, tr.optimizer), `${what}: the model and optimizer are unchanged`).toEqual(before);
        restore();
      };
      const byteOf = (file: Buffer, tensorName: string, at: number): number => {
        const { header } = split(file);
        const n = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
        return 8 + n + header[tensorName].data_offsets[0] + at;
      };
      const editTensors = (file: string, bytes: Buffer, fn: (ts: Map<string, t.nn.HostTensor>) => void): void => {
        const st = nn.decodeSafetensors(bytes);
        fn(st.tensors);
        writeFileSync(file, nn.encodeSafetensors(st.tensors, st.metadata)); // fresh, valid checksums
      };

      // control: the pristine checkpoint loads (into a scratch model and optimizer)
      const scratch = new nn.VisionLanguageModel(tiny({ seed: 77 }));
      const scratchTr = new nn.Trainer(scratch, { lr: 1e-2, totalSteps: 10 });
      nn.loadCheckpoint(dir, scratch, { optimizer: scratchTr.optimizer });
      expect(scratchTr.step).toBe(2);
      scratchTr.dispose();
      scratch.dispose();

      // one flipped bit in a weight's data
      const flipped = Buffer.from(pristine.model);
      flipped[byteOf(flipped, 'decoder.blocks.1.mlp.fc.weight', 101)] ^= 0x10;
      writeFileSync(modelFile, flipped);
      await refused('flipped bit', /loadCheckpoint|readSafetensors/);
      writeFileSync(modelFile, flipped);
      await refused('flipped bit (message)', /readSafetensors: .*model-step2-.*\.safetensors: tensor decoder\.blocks\.1\.mlp\.fc\.weight is corrupt: the CRC32 of its 16384 bytes is [0-9a-f]{8} but the file records [0-9a-f]{8}/);

      // a NaN weight (with a matching checksum) and an infinite one
      editTensors(modelFile, pristine.model, (ts) => { (ts.get('projector.weight')!.data as Float32Array)[5] = NaN; });
      await refused('NaN weight', /loadCheckpoint: tensor projector\.weight in .* has 1 non-finite value\(s\) \(the first, NaN, at index 5\): refusing to load it/);
      editTensors(modelFile, pristine.model, (ts) => { (ts.get('decoder.ln_f.weight')!.data as Float32Array).fill(-Infinity, 3); });
      await refused('-Inf weights', /tensor decoder\.ln_f\.weight in .* has 29 non-finite value\(s\) \(the first, -Infinity, at index 3\)/);

      // the whole data section zeroed
      const zeroed = Buffer.from(pristine.model);
      const n = Number(new DataView(zeroed.buffer, zeroed.byteOffset).getBigUint64(0, true));
      zeroed.fill(0, 8 + n);
      writeFileSync(modelFile, zeroed);
      await refused('zeroed data', /readSafetensors: .*: tensor [\w.]+ is corrupt: the CRC32/);

      // two same-shape tensors' offsets swapped in the header
      const { header, data } = split(pristine.model);
      const a = 'decoder.blocks.0.attn.qkv.weight';
      const b = 'decoder.blocks.1.attn.qkv.weight';
      [header[a].data_offsets, header[b].data_offsets] = [header[b].data_offsets, header[a].data_offsets];
      writeFileSync(modelFile, join2(header, data));
      await refused('swapped offsets', /tensor decoder\.blocks\.[01]\.attn\.qkv\.weight is corrupt: the CRC32/);

      // truncated
      writeFileSync(modelFile, pristine.model.subarray(0, pristine.model.length - 1000));
      await refused('truncated', /readSafetensors: .*: tensor .* run past the end of the data/);

      // the optimizer file is corrupt while the model file is fine: the model must not be loaded either
      const badOpt = Buffer.from(pristine.opt);
      badOpt[byteOf(badOpt, 'exp_avg_sq.projector.weight', 7)] ^= 0x01;
      writeFileSync(optFile, badOpt);
      await refused('corrupt optimizer file', /readSafetensors: .*optimizer-step2-.*: tensor exp_avg_sq\.projector\.weight is corrupt/);
      editTensors(optFile, pristine.opt, (ts) => { (ts.get('exp_avg_sq.projector.bias')!.data as Float32Array)[0] = -1; });
      await refused('negative second moment', /tensor exp_avg_sq\.projector\.bias in .* has 1 value\(s\) outside \[0, Infinity\]/);
      editTensors(optFile, pristine.opt, (ts) => { (ts.get('exp_avg.decoder.wte.weight')!.data as Float32Array)[9] = NaN; });
      await refused('NaN moment', /tensor exp_avg\.decoder\.wte\.weight in .* has 1 non-finite value/);
      editTensors(optFile, pristine.opt, (ts) => { ts.set('bias_correction', { dtype: 'f32', shape: [2], data: Float32Array.from([0.5, 1.5]) }); });
      await refused('bias correction out of range', /tensor bias_correction in .* has 1 value\(s\) outside \[0, 1\]/);
      editTensors(optFile, pristine.opt, (ts) => { ts.delete('exp_avg.projector.bias'); });
      await refused('missing moment', /optimizer-step2-.* has no tensor exp_avg\.projector\.bias/);

      // files of another save (same step, other id)
      const other = join(root, 'verify-other');
      const o = await nn.saveCheckpoint(other, m, { optimizer: tr.optimizer, step: 2 });
      writeFileSync(optFile, readFileSync(join(other, o.files.optimizer!)));
      await refused('mixed saves', /optimizer-step2-.* belongs to save "step2-[0-9a-f]{8}" but config\.json is save step2-/);

      // configs that lie about the tensors, or are invalid
      const cfg = JSON.parse(pristine.config);
      const lie = (c: Record<string, unknown>): void => writeFileSync(configFile, JSON.stringify({ ...cfg, config: { ...cfg.config, ...c } }));
      lie({ heads: 3 });
      await refused('heads do not divide the width', /loadCheckpoint: .*config\.json has an invalid model config: VlmConfig: widths must be multiples of the head counts: dim 32 \/ heads 3/);
      lie({ heads: 3 });
      await refused('heads (loadVisionLanguageModel)', /invalid model config: .*dim 32 \/ heads 3/, () => nn.loadVisionLanguageModel(dir));
      lie({ heads: 4 });
      await refused('heads (valid but not the model\'s)', /different config: heads 4 \(the model has 2\)/);
      lie({ vocabSize: 60 });
      await refused('vocab', /different config: vocabSize 60 \(the model has 50\)/);
      lie({ vocabSize: 60 });
      await refused('vocab (loadVisionLanguageModel)', /tensor decoder\.wte\.weight in .* has shape \[50, 32\] but the model expects \[60, 32\]/, () => nn.loadVisionLanguageModel(dir));
      lie({ layers: 3 });
      await refused('layers (loadVisionLanguageModel)', /missing 12 tensor\(s\) in .*: decoder\.blocks\.2\./, () => nn.loadVisionLanguageModel(dir));
      lie({ layerNormEps: 0 });
      await refused('eps 0', /invalid model config: VlmConfig: layerNormEps and mlpRatio must be > 0 and initStd >= 0, got 0, 4/);
      lie({ layerNormEps: -1e-5 });
      await refused('negative eps (loadVisionLanguageModel)', /invalid model config: VlmConfig: layerNormEps .* got -0.00001/, () => nn.loadVisionLanguageModel(dir));
      writeFileSync(configFile, JSON.stringify({ ...cfg, step: 3 }));
      await refused('step', /model-step2-.* is from step 2 but config\.json says step 3/);
      writeFileSync(configFile, JSON.stringify({ ...cfg, files: { model: '../verify-other/' + o.files.model, optimizer: null } }));
      await refused('paths outside the directory', /must be plain file names inside the checkpoint directory/);

      // after all that, the pristine checkpoint still loads, and does change the model
      nn.loadCheckpoint(dir, m, { optimizer: tr.optimizer });
      expect(tr.step).toBe(2);
      expect(await state(m, tr.optimizer)).not.toEqual(before);
    } finally {
      exs.forEach((e) => e.images?.dispose());
      tr.dispose();
      m.dispose();
    }
  });

  it('a save deletes only its own stale files: foreign files, and data files when config.json is not a checkpoint\'s, stay', async () => {
    const m = new nn.MLP(4, 8);
    const dir = join(root, 'foreign');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'model.safetensors'), 'not ours');
    writeFileSync(join(dir, 'notes.txt'), 'keep me');
    writeFileSync(join(dir, '.config.json.tmp-123-0badc0de'), 'a temporary of a killed save');
    writeFileSync(join(dir, 'model-step3-0123abcd.safetensors'), 'an uncommitted file of a killed save');
    const a = await nn.saveCheckpoint(dir, m);
    expect(readdirSync(dir).sort()).toEqual(['config.json', a.files.model, 'model.safetensors', 'notes.txt'].sort());
    writeFileSync(join(dir, 'model-step3-0123abcd.safetensors'), 'stale, but config.json is unreadable: kept');
    writeFileSync(join(dir, 'config.json'), '{"not": "a checkpoint"}');
    const b = await nn.saveCheckpoint(dir, m);
    expect(readdirSync(dir).sort()).toEqual(['config.json', a.files.model, b.files.model, 'model-step3-0123abcd.safetensors', 'model.safetensors', 'notes.txt'].sort());
    m.dispose();
  });

  it('checkpoints from before checksums and versioned names still load (bias corrections rebuilt from the step)', async () => {
    const m = new nn.VisionLanguageModel(tiny({ seed: 8 }));
    const tr = new nn.Trainer(m, { lr: 1e-2, totalSteps: 10 });
    const dir = join(root, 'legacy');
    const saved = await nn.saveCheckpoint(join(root, 'legacy-src'), m, { optimizer: tr.optimizer, step: 4 });
    const src = (f: string): t.nn.Safetensors => nn.readSafetensors(join(root, 'legacy-src', f));
    const meta = { format: 'pt', trimpi: nn.CHECKPOINT_FORMAT, step: '4' };
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'model.safetensors'), nn.encodeSafetensors(src(saved.files.model).tensors, meta, { checksums: false }));
    const opt = src(saved.files.optimizer!).tensors;
    opt.delete('bias_correction');
    writeFileSync(join(dir, 'optimizer.safetensors'), nn.encodeSafetensors(opt, meta, { checksums: false }));
    const { id: _id, lora: _lora, ...legacy } = saved;
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...legacy, files: { model: 'model.safetensors', optimizer: 'optimizer.safetensors' } }));
    const m2 = new nn.VisionLanguageModel(tiny({ seed: 9 }));
    const tr2 = new nn.Trainer(m2, { lr: 1e-2, totalSteps: 10 });
    nn.loadCheckpoint(dir, m2, { optimizer: tr2.optimizer });
    expect(tr2.step).toBe(4);
    expect(await m2.projector.weight.toArray()).toEqual(await m.projector.weight.toArray());
    const [b1, b2] = [0.9, 0.95].map(Math.fround);
    expect(Array.from(await tr2.optimizer.biasCorrection.toArray())).toEqual([Math.fround(1 - b1 ** 4), Math.fround(1 - b2 ** 4)]);
    // the next save into the legacy directory replaces the unversioned files
    const next = await nn.saveCheckpoint(dir, m2, { optimizer: tr2.optimizer });
    expect(readdirSync(dir).sort()).toEqual(['config.json', next.files.model, next.files.optimizer!].sort());
    [tr, tr2].forEach((x) => x.dispose());
    [m, m2].forEach((x) => x.dispose());
  });
});
