// Policy override (the paper's Fig 10): a new policy under the same name is given in context,
// "Suppose we have an updated Policy: NAME as follows: … According to the updated Policy: NAME, …".
// A model that reads its context follows the new policy; one that only recalls the internalized
// policy answers by the old one. ClevrPolicy: a fresh random tree under the same name
// (overridePolicy); ToolPolicy: the paper's new OCR rules (toolPolicyRecord('override')).
import { Policy, evaluatePolicy, overridePolicy, policyText, scoreClevr } from '../data/clevr_policy.js';
import { policyOfRecord, toolPolicyRecord } from '../data/export.js';
import { policyCropScenes } from '../data/render.js';
import { ToolCall, scoreToolCall, toolVersion } from '../data/tool_policy.js';
import type { Tokenizer } from '../data/tokenizer.js';
import type { VisionLanguageModel } from '../../nn/vlm.js';
import type { MpiData, MpiRecord } from '../stages/mpi_data.js';
import { EvalPrompt, generateOutputs } from './inputs.js';

/** The answer a policy prescribes: a case (ClevrPolicy) or a tool call (ToolPolicy). */
export type Gold = { task: 'clevr'; case: number; cases: number } | { task: 'tool'; call: ToolCall };

/** One override test item: the prompt with the new policy, and the answers of the new and the old policy. */
export interface OverrideItem extends EvalPrompt {
  id: string;
  gold: Gold;
  old: Gold;
  /** The new policy prescribes another answer than the old one. */
  changed: boolean;
}

/** The paper's Fig 10 prompt: the updated policy, then the query naming "the updated Policy". */
export function overridePrompt(name: string, newPolicyText: string, prompt: string): string {
  const query = prompt.includes(`According to Policy: ${name},`)
    ? prompt.replace(`According to Policy: ${name},`, `According to the updated Policy: ${name},`)
    : prompt.replace(/What is the next tool call\?$/, `According to the updated Policy: ${name}, what is the next tool call?`);
  return `Suppose we have an updated Policy: ${name} as follows:\n${newPolicyText}\n${query}`;
}

const sameGold = (a: Gold, b: Gold): boolean =>
  a.task === 'clevr' && b.task === 'clevr' ? a.case === b.case : a.task === 'tool' && b.task === 'tool' && JSON.stringify(a.call) === JSON.stringify(b.call);

/**
 * The override items of test records: ClevrPolicy records get their policy replaced by
 * overridePolicy(policy, seed) (its -M crops rendered with `seed`); ToolPolicy records get the
 * override rules, which change the OCR version only.
 */
export function overrideItems(data: MpiData, records: readonly MpiRecord[], seed: number): OverrideItem[] {
  const newPolicies = new Map<string, Policy>();
  return records.map((r) => {
    if (r.task === 'clevr') {
      const old = data.policyOf(r);
      let q = newPolicies.get(r.policy);
      if (!q) newPolicies.set(r.policy, (q = overridePolicy(policyOfRecord(old), seed)));
      const k = evaluatePolicy(q, r.scenes[0].objects).case;
      const gold: Gold = { task: 'clevr', case: k, cases: q.cases };
      const before: Gold = { task: 'clevr', case: r.case, cases: old.cases };
      return { id: r.id, prompt: overridePrompt(r.policy, policyText(q), r.prompt), images: [...policyCropScenes(q, seed), ...r.images], gold, old: before, changed: !sameGold(gold, before) };
    }
    const name = r.target.name.startsWith('OCR_v') ? toolVersion('OCR', r.profile, { rules: 'override' }).name : r.target.name;
    const gold: Gold = { task: 'tool', call: { name, arguments: r.target.arguments } };
    const before: Gold = { task: 'tool', call: r.target };
    return { id: r.id, prompt: overridePrompt(r.policy, toolPolicyRecord('override').text, r.prompt), images: [...r.images], gold, old: before, changed: !sameGold(gold, before) };
  });
}

/** The score of an output against a prescribed answer: exact case (clevr), 0.5·tool + 0.5·arguments (tool). */
export function scoreGold(output: string, g: Gold): number {
  return g.task === 'clevr' ? (scoreClevr(output, g.case, g.cases).correct ? 1 : 0) : scoreToolCall(output, g.call).score;
}

/** Whether an output gives the old policy's answer (clevr: its case; tool: its tool version). */
export function answersOld(output: string, old: Gold): boolean {
  return old.task === 'clevr' ? scoreClevr(output, old.case).correct : scoreToolCall(output, old.call).toolCorrect;
}

/** Policy override of one model: following the new policy, and answering by the old one. */
export interface OverrideResult {
  /** Mean score against the new policy over all items. */
  follow: number;
  /** Mean score against the new policy over the items where it changes the answer. */
  followChanged: number | null;
  /** Share of the changed items answered by the old, internalized policy. */
  old: number | null;
  n: number;
  changed: number;
  /** The first few items with their outputs. */
  examples: { id: string; output: string; score: number; old: boolean; changed: boolean }[];
}

/** Scores outputs of override items: following the new policy, and answering by the old one. */
export function summarizeOverride(items: readonly OverrideItem[], outputs: readonly string[], keep = 5): OverrideResult {
  const scored = items.map((it, k) => ({ id: it.id, output: outputs[k], score: scoreGold(outputs[k], it.gold), old: it.changed && answersOld(outputs[k], it.old), changed: it.changed }));
  const changed = scored.filter((s) => s.changed);
  const mean = (xs: number[]): number | null => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
  return {
    follow: mean(scored.map((s) => s.score)) ?? 0, followChanged: mean(changed.map((s) => s.score)), old: mean(changed.map((s) => (s.old ? 1 : 0))),
    n: scored.length, changed: changed.length, examples: scored.slice(0, keep),
  };
}

/**
 * Policy override: greedy answers of `model` on the test records with a new policy under the same
 * name in context (paper Fig 10), scored against the new policy, and how often the old one answers.
 */
export async function evaluateOverride(model: VisionLanguageModel, tok: Tokenizer, data: MpiData, o: { seed: number; maxNewTokens: number; limit?: number; batchSize?: number }): Promise<OverrideResult> {
  const records = o.limit ? data.test.slice(0, o.limit) : data.test;
  const items = overrideItems(data, records, o.seed);
  const outputs = await generateOutputs(model, tok, data, items, o);
  return summarizeOverride(items, outputs);
}
