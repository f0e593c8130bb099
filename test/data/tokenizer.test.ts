// The tokenizer, SceneQA and PNG files (no GPU).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BOS, EOS, IMAGE, PAD, SPECIAL_TOKENS, Tokenizer, UNK, buildVocabulary, clevrQuery, clevrResponse, decodePng,
  defaultTokenizer, encodePng, hashBytes, planDataset, policyText, pretokenize, promptWithPolicy, randomAttributes, rng,
  sceneQuestion, scoreSceneQa, targetPolicies, toolPolicyRecord,
} from '../../src/trimpi/data/index.js';
import type { DataRecord, ObjectAttributes, PolicyRecord } from '../../src/trimpi/data/index.js';

describe('tokenizer', () => {
  const tok = defaultTokenizer();

  it('has the special tokens first and a deterministic vocabulary', () => {
    expect(tok.vocab.slice(0, SPECIAL_TOKENS.length)).toEqual([...SPECIAL_TOKENS]);
    expect([PAD, BOS, EOS, UNK, IMAGE].map((i) => tok.vocab[i])).toEqual(['<pad>', '<bos>', '<eos>', '<unk>', '<image>']);
    expect(buildVocabulary()).toEqual(tok.vocab);
    for (const t of ['<think>', '</think>', '\\boxed{', '}', '{', '"', ':', ',', 'Case', '##}', '0', '##9']) expect(tok.vocab).toContain(t);
  });

  it('round-trips every text the generators write, with no unknown tokens, for fresh seeds', () => {
    let n = 0;
    for (const setting of ['clevr-t', 'clevr-m', 'tool', 'sceneqa', 'random-m'] as const) {
      const plan = planDataset({ setting, seed: 1234, depth: setting === 'clevr-t' ? 6 : 4, policies: 3, train: 30, test: 3 });
      const policies = new Map<string, PolicyRecord>();
      const tool = toolPolicyRecord();
      for (const step of plan.steps) {
        for (const p of step.policies) policies.set(p.name, p);
        for (const r of step.records as DataRecord[]) {
          const pol = r.task === 'sceneqa' ? null : r.task === 'tool' ? tool : policies.get(r.policy)!;
          const { prompt, images } = pol ? promptWithPolicy(r, pol) : r;
          for (const text of [prompt, r.response, r.answer]) {
            const e = tok.encodeDetailed(text);
            expect(e.unknownPieces, text.slice(0, 200)).toEqual([]);
            expect(tok.decode(e.ids)).toBe(text);
            n++;
          }
          // <image> places line up with the images list
          expect(tok.imageCount(tok.encode(prompt))).toBe(images.length);
        }
      }
    }
    expect(n).toBeGreaterThan(500);
  });

  it('splits policy names into syllables, digits one by one, and glues pieces', () => {
    const ids = tok.encode('According to Policy: L3-Surinu, Case 12.');
    expect(ids.map((i) => tok.vocab[i])).toEqual(['According', 'to', 'Policy', '##:', 'L', '##3', '##-', '##Su', '##ri', '##nu', '##,', 'Case', '1', '##2', '##.']);
    expect(tok.decode(ids)).toBe('According to Policy: L3-Surinu, Case 12.');
    // whitespace other than single spaces survives
    for (const s of ['a\n\nCase  1 ', '  Case 1\n', '\\boxed{{"name": "Plot", "arguments": {"command": "def solution():\\n    return 1"}}}']) {
      expect(tok.decode(tok.encode(s))).toBe(s);
    }
    expect(pretokenize('x  y').map((p) => p.text)).toEqual(['x', ' ', 'y']);
    expect(tok.decode([BOS, ...tok.encode('Case 3'), EOS, PAD])).toBe('Case 3');
    expect(tok.decode([BOS, ...tok.encode('Case 3'), EOS], { keepSpecial: true })).toBe('<bos> Case 3 <eos>');
  });

  it('maps unknown words to <unk> and counts them', () => {
    const before = tok.unknownCount;
    const e = tok.encodeDetailed('There is a purple zebra and a quokka.');
    expect(e.unknown).toBe(2);
    expect(e.unknownPieces.sort()).toEqual(['quokka', 'zebra']);
    expect(e.ids.filter((i) => i === UNK)).toHaveLength(2);
    expect(tok.decode(e.ids)).toBe('There is a purple <unk> and a <unk>.');
    expect(tok.unknownCount - before).toBe(2);
    expect(tok.encodeDetailed('Sux').unknown).toBe(1); // odd-length: not syllables
  });

  it('saves and loads the vocabulary as JSON', () => {
    const dir = mkdtempSync(join(tmpdir(), 'trimpi-vocab-'));
    try {
      tok.save(join(dir, 'vocab.json'));
      const back = Tokenizer.load(join(dir, 'vocab.json'));
      expect(back.vocab).toEqual(tok.vocab);
      const p = targetPolicies(1, 'M', 4)[0];
      const text = `${policyText(p)}\n<image>\n${clevrQuery(p.name)}`;
      expect(back.encode(text)).toEqual(tok.encode(text));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(() => new Tokenizer(['a', 'b'])).toThrow(/must start with/);
  });
});

describe('SceneQA', () => {
  it('answers match a direct count over the scene, existence is balanced, queries name one object', () => {
    const r = rng('qa');
    const yes = { yes: 0, no: 0 };
    for (let i = 0; i < 600; i++) {
      const objects: ObjectAttributes[] = Array.from({ length: r.int(3, 6) }, () => randomAttributes(r));
      const q = sceneQuestion(r, objects);
      const words = q.question.replace(/[?]/g, '').split(' ');
      const filterOf = (ws: string[]): ((o: ObjectAttributes) => boolean) => (o) => ws.every((w) => {
        const s = w.replace(/s$/, '');
        if (['cube', 'sphere', 'cylinder'].includes(s)) return o.shape === s;
        if (s === 'object') return true;
        return o.color === w || o.size === w || o.material === w;
      });
      if (q.kind === 'count') {
        const ws = words.slice(2, words.indexOf('are'));
        expect(q.answer).toBe(String(objects.filter(filterOf(ws)).length));
      } else if (q.kind === 'exist') {
        const ws = words.slice(3);
        expect(q.answer).toBe(objects.some(filterOf(ws)) ? 'yes' : 'no');
        yes[q.answer as 'yes' | 'no']++;
      } else {
        const asked = words[1] as 'size' | 'color' | 'material' | 'shape';
        const ws = words.slice(4);
        const hits = objects.filter(filterOf(ws));
        expect(hits).toHaveLength(1);
        expect(q.answer).toBe(hits[0][asked]);
      }
    }
    expect(Math.min(yes.yes, yes.no) / Math.max(yes.yes, yes.no)).toBeGreaterThan(0.7);
    expect(scoreSceneQa('\\boxed{ Yes }', 'yes').correct).toBe(true);
    expect(scoreSceneQa('yes', 'yes')).toEqual({ correct: false, predicted: null, malformed: ['no box'] });
  });
});

describe('PNG', () => {
  it('encodes deterministically and decodes back to the same pixels', () => {
    const r = rng('png');
    const img = { width: 37, height: 23, rgb: Uint8Array.from({ length: 37 * 23 * 3 }, () => r.int(0, 255)) };
    const a = encodePng(img);
    expect(hashBytes(encodePng(img))).toBe(hashBytes(a));
    expect([...a.slice(0, 8)]).toEqual([137, 80, 78, 71, 13, 10, 26, 10]);
    const back = decodePng(a);
    expect(back.width).toBe(37);
    expect(back.height).toBe(23);
    expect(hashBytes(back.rgb)).toBe(hashBytes(img.rgb));
    const bad = a.slice();
    bad[40] ^= 0xff;
    expect(() => decodePng(bad)).toThrow(/CRC|decodePng/);
    expect(() => encodePng({ width: 2, height: 2, rgb: new Uint8Array(5) })).toThrow(/expected 12 bytes/);
  });

  it('ClevrPolicy responses stay well inside the vocabulary for -M policies too', () => {
    const tok = defaultTokenizer();
    const r = rng('m');
    for (const p of targetPolicies(4, 'M', 6)) {
      const objs = Array.from({ length: 5 }, () => randomAttributes(r));
      expect(tok.encodeDetailed(clevrResponse(p, objs).response).unknown).toBe(0);
    }
  });
});
