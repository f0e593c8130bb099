// The layout of <run>/<setting>/evals.json: every evaluation of the suite beyond end-to-end accuracy,
// per method (or 'base'), filled in one entry at a time so that an interrupted suite resumes.
import type { BranchingResult } from './branching.js';
import type { PrefillResult, TokenRow } from './efficiency.js';
import type { ForgettingResult } from './forgetting.js';
import type { OverrideResult } from './override.js';
import type { ReferralSummary } from './referral.js';
import type { Baselines } from './accuracy.js';
import type { RlStepMetrics } from '../stages/rl.js';

/** A stage's summary (stages/<stage>/done.json and results.json). */
export interface StageSummary {
  stage: string;
  from: string;
  seconds: number;
  steps: number;
  /** Training positions per second (supervised) or update positions per second (RL). */
  positionsPerSecond: number | null;
  /** Sampled tokens per second of the rollouts (RL). */
  rolloutTokensPerSecond: number | null;
  peakGpuBytes: number;
  finalLoss: number | null;
  /** RL: the last rollout step's metrics. */
  last?: RlStepMetrics;
}

/** One method's row of results.json: its accuracy on the test split. */
export interface MethodResult {
  label: string;
  accuracy: number;
  format: number;
  n: number;
  withPolicy: boolean;
  promptTokens: number;
  responseTokens: number;
  seconds: number;
}

/** <run>/<setting>/results.json, written by `trimpi run` (keys of `methods` are method names). */
export interface RunResults {
  setting: string;
  depth: number;
  seed: number;
  scale: string;
  device: string;
  base: string;
  baselines: Baselines;
  methods: Record<string, MethodResult>;
  stages: Record<string, StageSummary>;
  wallSeconds: number;
}

/** Accuracy of an MPI model with its policy put back in the prompt (paper Table 4), beside its accuracy without. */
export interface InContextAfterMpi {
  withPolicy: number;
  withoutPolicy: number | null;
  format: number;
  n: number;
}

/** evals.json. Keys of the per-method maps are method names (forgetting also has 'base'). */
export interface EvalSuiteResults {
  setting: string;
  depth: number;
  seed: number;
  /** Policy override (paper Fig 10): following a new policy given in context, and answering by the old one. */
  override: Record<string, OverrideResult>;
  /** Exact policy referral (docs/referral.md) of each method's test responses (0–10). */
  referral: Record<string, ReferralSummary>;
  /** Each MPI model with the policy put back in context. */
  inContextAfterMpi: Record<string, InContextAfterMpi>;
  /** SceneQA and in-context following of fresh random policies. */
  forgetting: Record<string, ForgettingResult>;
  /** Prompt tokens for every setting and depth; measured prefill time for this setting (the base model). */
  efficiency: { tokens: TokenRow[]; prefill: PrefillResult | null } | null;
  /** Referenced condition ids against the gold CoTs'. */
  branching: Record<string, BranchingResult>;
  /** Wall seconds of each entry, keyed "evaluation/method". */
  seconds: Record<string, number>;
  /** Entries that failed, keyed "evaluation/method", with the message (retried on the next run). */
  errors: Record<string, string>;
}

/** An empty evals.json for a setting. */
export function emptySuiteResults(setting: string, depth: number, seed: number): EvalSuiteResults {
  return { setting, depth, seed, override: {}, referral: {}, inContextAfterMpi: {}, forgetting: {}, efficiency: null, branching: {}, seconds: {}, errors: {} };
}
