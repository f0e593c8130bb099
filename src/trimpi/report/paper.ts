// The paper's figures that the report prints beside ours, copied from docs/trimpi.md section 1
// ("Multimodal Policy Internalization for Conversational Agents", arXiv 2510.09474: Qwen2.5-VL-7B,
// ClevrPolicy at depth N = 6, accuracy % without the policy in context unless stated).

/** Headline table, N = 6, accuracy % per method (keys are the pipeline's method names). */
export const PAPER_MAIN: Readonly<Record<string, { T: number; M: number }>> = {
  'in-context': { T: 13.15, M: 5.65 },
  'direct-sft': { T: 15.15, M: 14.55 },
  'cot-sft': { T: 17.8, M: 14.3 },
  'cot-sft-grpo': { T: 47.05, M: 64.5 },
  'cot-sft-dapo': { T: 67.6, M: 74.4 },
  'trimpi-poro-grpo': { T: 65.85, M: 84.7 },
  'trimpi-poro-dapo': { T: 77.8, M: 85.0 },
};

/** Policy override, TriMPI PoRo-DAPO, accuracy % following the new policy (-T / -M). */
export const PAPER_OVERRIDE: Readonly<Record<string, { T: number; M: number }>> = {
  'trimpi-poro-dapo': { T: 59.4, M: 85.15 },
};

/** Efficiency: what dropping the policy saved at most, in % (prompt tokens, prefill time). */
export const PAPER_EFFICIENCY = { tokenReduction: 93.9, prefillReduction: 85.7 } as const;

/** Notes the paper states without a table we copy. */
export const PAPER_NOTES: readonly string[] = [
  'At N = 4 the RL rows reach 97–99%.',
  'Training with the policy in the prompt and removing it at inference gives near-random accuracy.',
  'Policy in context after MPI: MPI models do worse with the policy put back in the prompt.',
  'Forgetting: TriMPI forgets least on general benchmarks.',
  'Policy referral is scored 0–10 (the paper with a judge model; here exactly, docs/referral.md).',
];
