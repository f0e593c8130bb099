// Evaluations of the MPI models (docs/trimpi.md section 6, docs/referral.md): end-to-end accuracy,
// policy override, policy referral, forgetting, efficiency and branching errors.
export * from './accuracy.js';
export * from './inputs.js';
export * from './override.js';
export * from './referral.js';
export * from './branching.js';
export * from './forgetting.js';
export * from './efficiency.js';
export * from './results.js';
