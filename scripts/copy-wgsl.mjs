// Copies the .wgsl kernel sources next to the compiled launchers (dist/src/kernels/wgsl).
import { cpSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dest = join(root, 'dist/src/kernels/wgsl');
mkdirSync(dest, { recursive: true });
cpSync(join(root, 'src/kernels/wgsl'), dest, { recursive: true });
