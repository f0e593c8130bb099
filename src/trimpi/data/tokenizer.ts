// The word-level tokenizer over the generators' closed vocabulary (docs/trimpi.md section 3.5).
//
// Pre-tokenization splits text into pieces: special tokens (<image>, <think>, </think>, \boxed{, and
// the JSON escapes \n and \"), runs of letters, single digits, and single other characters. Spaces
// are not pieces: a piece that follows exactly one space is written as-is, a piece glued to the one
// before it gets the "##" prefix ("Case 8" -> Case, 8; "OCR_v1" -> OCR, ##_, ##v, ##1); other
// whitespace (newlines, extra spaces) becomes pieces of its own. So decode(encode(text)) === text
// whenever every piece is in the vocabulary and every special token starts the text or follows a space
// or a newline (a special token is one id, so it carries no glue; decode puts it after a space unless
// it follows a newline; the generators always write them that way). A letter run that is not a word of the vocabulary is
// split into vocabulary syllables when it can be (policy names like "Surinu" -> Su, ##ri, ##nu), and
// is <unk> otherwise; unknowns are counted.
import { readFileSync, writeFileSync } from 'node:fs';
import { TrimpiError, check } from '../../gpu/errors.js';
import { NAME_SYLLABLES, clevrQuery, clevrResponse, policyText, randomPolicies } from './clevr_policy.js';
import { rng } from './rng.js';
import { ATTRIBUTE_TYPES, ATTRIBUTE_VALUES, ObjectAttributes, SceneObject, randomAttributes } from './scene.js';
import { sceneQaPrompt, sceneQaResponse, sceneQaVocabularyTexts, sceneQuestion } from './sceneqa.js';
import { toolPolicyText, toolPrompt, toolSample, toolVocabularyTexts } from './tool_policy.js';

/** The special tokens, ids 0..7 in this order: every vocabulary starts with them. */
export const SPECIAL_TOKENS = ['<pad>', '<bos>', '<eos>', '<unk>', '<image>', '<think>', '</think>', '\\boxed{'] as const;
/** Ids of the first special tokens: <pad> 0, <bos> 1, <eos> 2, <unk> 3, <image> 4 (an image's place). */
export const PAD = 0, BOS = 1, EOS = 2, UNK = 3, IMAGE = 4;

const GLUE = '##';
// order matters: specials and escapes first
const PIECE_RE = /<image>|<think>|<\/think>|\\boxed\{|\\n|\\"|[A-Za-z]+|[0-9]|[^ ]/g;
const SPECIAL_SET = new Set<string>(SPECIAL_TOKENS);
const SYLLABLES = new Set(NAME_SYLLABLES);

interface Piece {
  text: string;
  glued: boolean;
}

/** Splits text into pieces with their glue flags (see the header). */
export function pretokenize(text: string): Piece[] {
  const out: Piece[] = [];
  let last = 0;
  const spaces = (n: number): void => {
    for (let k = 0; k < n; k++) out.push({ text: ' ', glued: true });
  };
  for (const m of text.matchAll(PIECE_RE)) {
    const start = m.index!;
    const gap = start - last; // plain spaces before this piece
    if (out.length === 0) {
      // text start: leading spaces are pieces; the first piece glues to them (or to nothing)
      spaces(gap);
      out.push({ text: m[0], glued: gap > 0 });
    } else if (gap === 0) out.push({ text: m[0], glued: true });
    else {
      // one space separates; the others are pieces of their own
      spaces(gap - 1);
      out.push({ text: m[0], glued: false });
    }
    last = start + m[0].length;
  }
  spaces(text.length - last);
  return out;
}

function tokenString(p: Piece): string {
  return SPECIAL_SET.has(p.text) ? p.text : p.glued ? GLUE + p.text : p.text;
}

/** The result of Tokenizer.encodeDetailed: the ids and the pieces that became <unk>. */
export interface EncodeResult {
  ids: number[];
  /** How many pieces became <unk>. */
  unknown: number;
  /** The distinct unknown pieces. */
  unknownPieces: string[];
}

/**
 * The word-level tokenizer over a fixed vocabulary (SPECIAL_TOKENS first, then pieces in spaced and "##"-glued
 * form): encode() splits text with pretokenize (unknown letter runs into name syllables, else <unk>); decode() undoes it.
 */
export class Tokenizer {
  readonly vocab: readonly string[];
  private readonly index: Map<string, number>;
  /** Unknown pieces seen by encode() since construction (a running count for reports). */
  unknownCount = 0;

  constructor(vocab: readonly string[]) {
    check(SPECIAL_TOKENS.every((s, i) => vocab[i] === s), 'Tokenizer', () => `the vocabulary must start with ${SPECIAL_TOKENS.join(' ')}`);
    check(new Set(vocab).size === vocab.length, 'Tokenizer', () => 'the vocabulary has duplicate entries');
    this.vocab = [...vocab];
    this.index = new Map(vocab.map((t, i) => [t, i]));
  }

  get size(): number {
    return this.vocab.length;
  }

  id(token: string): number {
    const i = this.index.get(token);
    if (i === undefined) throw new TrimpiError('Tokenizer.id', `'${token}' is not in the vocabulary`);
    return i;
  }

  /** Splits a letter run into name syllables (two letters each) from the vocabulary, or null. */
  private splitWord(word: string, glued: boolean): number[] | null {
    if (word.length % 2 !== 0) return null;
    const ids: number[] = [];
    for (let pos = 0; pos < word.length; pos += 2) {
      const s = word.slice(pos, pos + 2);
      if (!SYLLABLES.has(s.toLowerCase())) return null;
      const id = this.index.get(pos === 0 && !glued ? s : GLUE + s);
      if (id === undefined) return null;
      ids.push(id);
    }
    return ids;
  }

  /** Token ids of `text` (no <bos>/<eos>), with the count of unknown pieces. */
  encodeDetailed(text: string): EncodeResult {
    const ids: number[] = [];
    const unknownPieces = new Set<string>();
    let unknown = 0;
    for (const p of pretokenize(text)) {
      const id = this.index.get(tokenString(p));
      if (id !== undefined) {
        ids.push(id);
        continue;
      }
      const split = /^[A-Za-z]+$/.test(p.text) ? this.splitWord(p.text, p.glued) : null;
      if (split) ids.push(...split);
      else {
        ids.push(UNK);
        unknown++;
        unknownPieces.add(p.text);
      }
    }
    this.unknownCount += unknown;
    return { ids, unknown, unknownPieces: [...unknownPieces] };
  }

  encode(text: string): number[] {
    return this.encodeDetailed(text).ids;
  }

  /** Text of token ids; <bos>, <eos> and <pad> are dropped unless `keepSpecial`. */
  decode(ids: readonly number[], opts: { keepSpecial?: boolean } = {}): string {
    let out = '';
    let first = true;
    for (const id of ids) {
      const tok = this.vocab[id];
      check(tok !== undefined, 'Tokenizer.decode', () => `token id ${id} is out of range [0, ${this.vocab.length})`);
      if (!opts.keepSpecial && (id === PAD || id === BOS || id === EOS)) continue;
      if (tok.startsWith(GLUE) && tok.length > GLUE.length) out += tok.slice(GLUE.length);
      else if (SPECIAL_SET.has(tok)) out += (first || out.endsWith('\n') ? '' : ' ') + tok;
      else out += (first ? '' : ' ') + tok;
      first = false;
    }
    return out;
  }

  /** Number of `<image>` places in a token sequence (they line up with the images list, in order). */
  imageCount(ids: readonly number[]): number {
    return ids.reduce((n, id) => n + (id === IMAGE ? 1 : 0), 0);
  }

  toJSON(): { type: string; glue: string; specials: readonly string[]; vocab: readonly string[] } {
    return { type: 'trimpi-word', glue: GLUE, specials: SPECIAL_TOKENS, vocab: this.vocab };
  }

  save(path: string): void {
    writeFileSync(path, JSON.stringify(this.toJSON()) + '\n');
  }

  static load(path: string): Tokenizer {
    const j = JSON.parse(readFileSync(path, 'utf8')) as { type?: string; vocab?: unknown };
    check(j.type === 'trimpi-word' && Array.isArray(j.vocab), 'Tokenizer.load', () => `${path} is not a trimpi vocabulary file`);
    return new Tokenizer(j.vocab as string[]);
  }
}

// ---- the closed vocabulary -------------------------------------------------------------------------

function fakeObjects(r: ReturnType<typeof rng>, n: number): SceneObject[] {
  return Array.from({ length: n }, () => {
    const a: ObjectAttributes = randomAttributes(r);
    const x1 = r.int(0, 50), y1 = r.int(0, 50);
    return { ...a, x: 0, z: 0, rotation: 0, depth: 10, box: [x1, y1, x1 + r.int(3, 13), y1 + r.int(3, 13)] as [number, number, number, number] };
  });
}

/** Every text the generators can produce pieces from: fixed texts plus a seeded pass over each generator. */
export function vocabularyCorpus(): string[] {
  const texts: string[] = [...sceneQaVocabularyTexts(), ...toolVocabularyTexts()];
  for (const t of ATTRIBUTE_TYPES) for (const v of ATTRIBUTE_VALUES[t]) texts.push(`${t} ${v} ${v}s (${v})`);
  texts.push('0 1 2 3 4 5 6 7 8 9', '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~', 'image png jpg L');
  const r = rng('vocabulary', 'pass');
  for (const mode of ['T', 'M'] as const) {
    for (const depth of [2, 4, 6]) {
      // strict trees: the corpus (and so the vocabulary the shipped base was trained with) predates the pruning option
      for (const p of randomPolicies(0, mode, depth, 4, 0, 'strict')) {
        texts.push(policyText(p), clevrQuery(p.name));
        for (let i = 0; i < 40; i++) texts.push(clevrResponse(p, fakeObjects(r, r.int(1, 10))).response);
      }
    }
  }
  for (let i = 0; i < 300; i++) {
    const objs = fakeObjects(r, r.int(1, 10));
    const q = sceneQuestion(r, objs);
    texts.push(sceneQaPrompt(q), sceneQaResponse(q));
  }
  texts.push(toolPolicyText());
  for (let i = 0; i < 600; i++) {
    const imgs = Array.from({ length: r.int(1, 2) }, (_, k) => ({ name: `image/image_${r.int(0, 999)}.png`, objects: fakeObjects(r, r.int(1, 10)).map((o, j) => ({ ...o, depth: j + k })) }));
    const s = toolSample(r, imgs);
    texts.push(toolPrompt(s), s.response);
  }
  return texts;
}

/** The vocabulary: special tokens, then every piece of the corpus in both forms (spaced and glued), sorted. */
export function buildVocabulary(corpus: readonly string[] = vocabularyCorpus()): string[] {
  const pieces = new Set<string>();
  for (const t of corpus) for (const p of pretokenize(t)) if (!SPECIAL_SET.has(p.text)) pieces.add(p.text);
  for (const s of NAME_SYLLABLES) pieces.add(s).add(s[0].toUpperCase() + s.slice(1));
  for (const d of '0123456789') pieces.add(d);
  const forms = new Set<string>();
  for (const p of pieces) {
    forms.add(p);
    forms.add(GLUE + p);
  }
  const sorted = [...forms].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return [...SPECIAL_TOKENS, ...sorted];
}

let cached: Tokenizer | null = null;
/** The project's tokenizer (built once per process, deterministic). */
export function defaultTokenizer(): Tokenizer {
  cached ??= new Tokenizer(buildVocabulary());
  return cached;
}
