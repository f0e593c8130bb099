// Evaluations of the MPI models (docs/trimpi.md section 6).
export * from './accuracy.js';
