// The TriMPI stages: batches of packed targets, stage 0 (the base model), the supervised stages,
// RL with PolicyRollout, and the MPI data they read.
export * from './batch.js';
export * from './examples.js';
export * from './generation.js';
export * from './mpi_data.js';
export * from './stage0.js';
export * from './supervised.js';
export * from './rl.js';
export * from './model_card.js';
