// Forgetting: what MPI costs the base model's general abilities. The same held-out items for every
// model: SceneQA (counting, existence, attribute questions about fresh scenes) and in-context
// following of fresh random policies (never a target policy, never one of stage 0's training pool).
import type { PolicyMode } from '../data/clevr_policy.js';
import { QA_KINDS } from '../data/sceneqa.js';
import { rng } from '../data/rng.js';
import type { Tokenizer } from '../data/tokenizer.js';
import type { VisionLanguageModel } from '../../nn/vlm.js';
import { PolicyPool, TextExample, policyExample, sceneQaExample } from '../stages/examples.js';
import { evaluateExamples } from '../stages/generation.js';

/**
 * Where the fresh random policies start in randomPolicies()' endless stream: past stage 0's training
 * pool (3,000 per kind by default) and its evaluation window.
 */
export const FRESH_POLICY_OFFSET = 20_000;

/** The kinds of random policies the in-context part uses by default: those stage 0 learns to read. */
export const FORGETTING_POLICY_KINDS: readonly { mode: PolicyMode; depth: number }[] = [{ mode: 'T', depth: 2 }, { mode: 'M', depth: 2 }, { mode: 'T', depth: 4 }];

/** What the forgetting items are drawn from, and how they are generated. */
export interface ForgettingOptions {
  /** Seeds the scenes, questions and policies (use the run's seed: random policies then avoid its target policies). */
  seed: number;
  /** SceneQA items per question kind, and in-context items per policy kind. */
  n: number;
  maxNewTokens: number;
  policyKinds?: readonly { mode: PolicyMode; depth: number }[];
  batchSize?: number;
}

/**
 * The held-out items: n SceneQA questions of each kind and, per policy kind, n fresh random policies
 * each with one scene (a uniformly drawn case). Scenes are drawn at `imageSize` pixels.
 */
export function forgettingExamples(o: Pick<ForgettingOptions, 'seed' | 'n' | 'policyKinds'>, imageSize: number): TextExample[] {
  const r = rng(o.seed, 'forgetting');
  const pool = new PolicyPool(o.seed, o.n, FRESH_POLICY_OFFSET);
  const out: TextExample[] = [];
  for (const kind of QA_KINDS) for (let i = 0; i < o.n; i++) out.push(sceneQaExample(r, kind));
  for (const { mode, depth } of o.policyKinds ?? FORGETTING_POLICY_KINDS) {
    for (const p of pool.get(mode, depth)) out.push(policyExample(r, p, o.seed + 1));
  }
  // the scenes keep their layout; only the rendered size follows the model
  return out.map((e) => ({ ...e, scenes: e.scenes.map((s) => ({ ...s, width: imageSize, height: imageSize })) }));
}

/** One model's general abilities on the forgetting items. */
export interface ForgettingResult {
  /** SceneQA accuracy (exact answer). */
  sceneqa: number;
  /** In-context policy following accuracy (exact case) over the fresh random policies. */
  policy: number;
  /** Accuracy and count per group ("sceneqa/count", "policy/T2", ...). */
  groups: Record<string, { accuracy: number; n: number }>;
  n: number;
}

/** Forgetting: SceneQA accuracy and in-context following of fresh random policies, greedy, on held-out items. */
export async function evaluateForgetting(model: VisionLanguageModel, tok: Tokenizer, o: ForgettingOptions): Promise<ForgettingResult> {
  const examples = forgettingExamples(o, model.config.imageSize);
  const s = await evaluateExamples(model, tok, examples, { maxNewTokens: o.maxNewTokens, batchSize: o.batchSize ?? 32 });
  const mean = (task: string): number => {
    const items = s.items.filter((it) => it.group.startsWith(`${task}/`));
    return items.length ? items.reduce((a, it) => a + it.correct, 0) / items.length : 0;
  };
  return { sceneqa: mean('sceneqa'), policy: mean('policy'), groups: s.groups, n: s.n };
}
