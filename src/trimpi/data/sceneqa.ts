// SceneQA: general questions about a scene (counting, existence, attribute queries) with exact
// answers, for stage-0 training and for measuring forgetting (docs/trimpi.md section 3.4). No GPU.
import { Rng } from './rng.js';
import { ATTRIBUTE_TYPES, ATTRIBUTE_VALUES, AttributeType, ObjectAttributes } from './scene.js';
import { lastBoxed } from './clevr_policy.js';

/** A SceneQA question kind: 'count' (a number), 'exist' (yes/no) or 'query' (an attribute value). */
export type QaKind = 'count' | 'exist' | 'query';
/** The SceneQA question kinds; the sceneqa dataset asks one question of each kind per image. */
export const QA_KINDS: readonly QaKind[] = ['count', 'exist', 'query'];

/** A SceneQA question with its exact answer. */
export interface QaItem {
  kind: QaKind;
  question: string;
  /** The exact answer: a number ("3"), "yes"/"no", or an attribute value ("red"). */
  answer: string;
}

/** Attribute values an object must have (a type left out matches any value). */
export type Filter = Partial<Record<AttributeType, string>>;

function matches(o: ObjectAttributes, f: Filter): boolean {
  return ATTRIBUTE_TYPES.every((t) => f[t] === undefined || o[t] === f[t]);
}

/** "small red objects" / "red cubes" (plural), or "small red object" / "red cube" (singular). */
export function filterPhrase(f: Filter, pluralForm: boolean): string {
  const adj = (['size', 'color', 'material'] as const).map((t) => f[t]).filter((v): v is string => v !== undefined);
  const nounWord = f.shape ?? 'object';
  return [...adj, pluralForm ? `${nounWord}s` : nounWord].join(' ');
}

function article(phrase: string): string {
  return /^[aeiou]/.test(phrase) ? 'an' : 'a';
}

/** "Is there a small red object?" / "Is there an object?": SceneQA's existence question for a filter. */
export function existenceQuestion(f: Filter): string {
  const phrase = filterPhrase(f, false);
  return `Is there ${article(phrase)} ${phrase}?`;
}

function randomFilter(r: Rng, nTypes: number, from?: ObjectAttributes): Filter {
  const types = r.shuffle(ATTRIBUTE_TYPES).slice(0, nTypes);
  const f: Filter = {};
  for (const t of types) f[t] = from ? from[t] : r.pick(ATTRIBUTE_VALUES[t]);
  return f;
}

/**
 * One question about `objects` (of `kind`, or a random kind). Existence answers are yes or no equally
 * often; half the counting filters come from an object in the scene, so counts are not mostly 0.
 */
export function sceneQuestion(r: Rng, objects: readonly ObjectAttributes[], kind: QaKind = r.pick(QA_KINDS)): QaItem {
  if (kind === 'count') {
    // half the filters come from an object in the scene so that counts are not mostly 0
    const f = randomFilter(r, r.int(1, 2), r.bool(0.5) ? r.pick(objects) : undefined);
    const n = objects.filter((o) => matches(o, f)).length;
    return { kind, question: `How many ${filterPhrase(f, true)} are there?`, answer: String(n) };
  }
  if (kind === 'exist') {
    // the answer is drawn first (yes or no equally often), then a filter that gives it
    const wantYes = r.bool(0.5);
    let f = randomFilter(r, r.int(1, 3), wantYes ? r.pick(objects) : undefined);
    for (let tries = 0; !wantYes && tries < 50 && objects.some((o) => matches(o, f)); tries++) f = randomFilter(r, r.int(1, 3));
    const yes = objects.some((o) => matches(o, f));
    return { kind, question: existenceQuestion(f), answer: yes ? 'yes' : 'no' };
  }
  // query: an attribute of an object named uniquely by (some of) its other attributes
  for (let tries = 0; tries < 50; tries++) {
    const o = r.pick(objects);
    const asked = r.pick(ATTRIBUTE_TYPES);
    const others = r.shuffle(ATTRIBUTE_TYPES.filter((t) => t !== asked));
    for (let k = 1; k <= others.length; k++) {
      const f: Filter = {};
      for (const t of others.slice(0, k)) f[t] = o[t];
      if (objects.filter((p) => matches(p, f)).length === 1) {
        const phrase = filterPhrase(f, false);
        return { kind, question: `What ${asked} is the ${phrase}?`, answer: o[asked] };
      }
    }
  }
  // every object has a twin: fall back to counting
  return sceneQuestion(r, objects, 'count');
}

/** The SceneQA prompt: `<image>`, a newline, then the question. */
export function sceneQaPrompt(q: QaItem): string {
  return `<image>\n${q.question}`;
}

/** The SceneQA target: the answer boxed, `\boxed{ANSWER}`, without a chain of thought. */
export function sceneQaResponse(q: QaItem): string {
  return `\\boxed{${q.answer}}`;
}

/** Exact match of the boxed answer (case-insensitive, trimmed); malformed when there is no box. */
export function scoreSceneQa(output: string, gold: string): { correct: boolean; predicted: string | null; malformed: string[] } {
  const b = lastBoxed(output);
  const predicted = b === null ? null : b.trim().toLowerCase();
  return { correct: predicted === gold.trim().toLowerCase(), predicted, malformed: b === null ? ['no box'] : [] };
}

/** Every fixed text SceneQA can produce (for the tokenizer's closed vocabulary). */
export function sceneQaVocabularyTexts(): string[] {
  const out: string[] = ['How many are there ?', 'Is there a an ?', 'What is the ?', 'yes no', ...ATTRIBUTE_TYPES];
  for (const t of ATTRIBUTE_TYPES) for (const v of ATTRIBUTE_VALUES[t]) out.push(v, `${v}s`);
  out.push('object objects');
  return out;
}
