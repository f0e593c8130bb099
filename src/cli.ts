#!/usr/bin/env node
// The `trimpi` command. `trimpi doctor` reports the WebGPU adapter, backend, limits and features,
// or what to install when there is none.
import { createDevice, installHint, NoAdapterError } from './gpu/device.js';
import { runDataCommand } from './trimpi/data/cli.js';
import { runPretrainCommand, runRunCommand } from './trimpi/cli.js';

const USAGE = `usage: trimpi <command>

commands:
  doctor        print the WebGPU adapter, backend, limits and features (or what to install)
  data          generate a dataset: trimpi data --setting clevr-t|clevr-m|tool|sceneqa --depth N --seed S --out DIR
                (trimpi data --help for every option)
  pretrain      train the stage-0 base model: trimpi pretrain --out models/base-cpu (trimpi pretrain --help)
  run           every method of the paper's table on one setting, resumable:
                trimpi run --setting clevr-t --depth 2 --methods all --scale demo|small|gpu --out runs/NAME
  eval          the evaluation suite of a run (override, referral, policy in context after MPI, forgetting,
                efficiency, branching) into <setting>/evals.json, then the report: trimpi eval runs/NAME
  report        the run's self-contained HTML report: trimpi report runs/NAME (writes runs/NAME/report.html)
  tune          sweep the matmul tile per shape of a preset model on this adapter and keep the winners
                with --save (~/.cache/trimpi/matmul-tiles.json, or TRIMPI_MATMUL_TILES): trimpi tune
                [--preset cpu] [--rounds N] [--save] (measured: isolated winners can slow a model down)
  help          this text`;

async function doctor(): Promise<number> {
  console.log(`node ${process.version} on ${process.platform}-${process.arch}`);
  let dev;
  try {
    dev = await createDevice();
  } catch (e) {
    if (e instanceof NoAdapterError) {
      console.log('adapter: none');
      console.log(installHint());
      return 1;
    }
    console.log(`adapter: failed to create a device: ${(e as Error).message}`);
    console.log(installHint());
    return 1;
  }
  const a = dev.adapter;
  console.log(`adapter: ${a.description || a.device} (vendor ${a.vendor || '?'}, architecture ${a.architecture || '?'}${a.isFallbackAdapter ? ', software fallback' : ''})`);
  console.log(`backend: ${a.backend}`);
  console.log('limits (requested at the adapter\'s maxima):');
  for (const [k, v] of Object.entries(dev.limits)) console.log(`  ${k.padEnd(36)} ${v}`);
  console.log(`features: ${[...dev.features].sort().join(', ')}`);
  for (const f of ['shader-f16', 'subgroups', 'timestamp-query']) console.log(`  ${f.padEnd(16)} ${dev.features.has(f) ? 'enabled' : 'not offered'}`);
  // a real round trip: proves the pipeline compiler and the queue work
  const { tensor } = await import('./tensor/ops.js');
  const { setDevice } = await import('./gpu/device.js');
  setDevice(dev);
  const t0 = performance.now();
  const x = tensor([1, 2, 3, 4]);
  const y = await x.mul(x).sum().item();
  console.log(`self-test: sum(x*x) for x = [1, 2, 3, 4] = ${y} (${y === 30 ? 'ok' : 'WRONG'}) in ${(performance.now() - t0).toFixed(0)} ms`);
  dev.destroy();
  return y === 30 ? 0 : 1;
}

/** `trimpi tune`: the tile sweep over a preset's matmuls (kernels/matmul.ts tuneMatmulTiles), printed and saved. */
async function tune(args: string[]): Promise<number> {
  const opts = { preset: 'cpu', rounds: 5, save: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--preset' && args[i + 1] !== undefined) opts.preset = args[++i];
    else if (a === '--rounds' && /^[1-9][0-9]*$/.test(args[i + 1] ?? '')) opts.rounds = Number(args[++i]);
    else if (a === '--save') opts.save = true;
    else {
      console.error(`trimpi tune: unexpected argument '${a}' (expected --preset tiny|cpu|gpu, --rounds N (a positive integer), --save)\n${USAGE}`);
      return 2;
    }
  }
  const { init } = await import('./gpu/device.js');
  const { tuneMatmulTiles } = await import('./kernels/matmul.js');
  const { describeTuneCases, describeTuneTile, matmulTilesFile, saveMatmulTiles } = await import('./kernels/matmul_tuning.js');
  const { presetMatmulCases } = await import('./nn/bench.js');
  const { PRESET_NAMES } = await import('./nn/presets.js');
  const { defaultTokenizer } = await import('./trimpi/data/tokenizer.js');
  if (!(PRESET_NAMES as readonly string[]).includes(opts.preset)) {
    console.error(`trimpi tune: unknown preset '${opts.preset}' (expected one of ${PRESET_NAMES.join(', ')})`);
    return 2;
  }
  const dev = await init();
  const cases = presetMatmulCases(opts.preset, defaultTokenizer().size);
  const results = await tuneMatmulTiles(dev, cases, { rounds: opts.rounds });
  if (results.length === 0) {
    console.log(`${dev.adapter.description || dev.adapter.device}: no tunable matmul tile on this adapter (the simd variant is for CPU-SIMD adapters); nothing to do`);
    return 0;
  }
  console.log(`${'cases (M x K -> N, B)'.padEnd(44)} ${'shape class'.padEnd(34)} untuned ms  tuned ms  tile (rb x tnc)  speed-up`);
  for (const r of results) {
    console.log(`${describeTuneCases(r).padEnd(44)} ${r.shapeClass.padEnd(34)} ${r.heuristicMs.toFixed(2).padStart(10)} ${r.ms.toFixed(2).padStart(9)}  ${describeTuneTile(r).padEnd(15)}  ${(r.heuristicMs / r.ms).toFixed(2)}x`);
  }
  const file = matmulTilesFile();
  if (!opts.save) console.log('not saved (--save keeps them; check the model-level effect first: bench/RESULTS.md measured a slower decode step with them)');
  else if (!file) console.log('not saved: TRIMPI_MATMUL_TILES=off');
  else {
    saveMatmulTiles(dev, results, file);
    console.log(`saved ${results.filter((r) => r.tile).length} tiles (${results.filter((r) => !r.tile).length} classes keep the heuristic) to ${file}; every later process on this adapter uses them`);
  }
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [cmd] = argv;
  switch (cmd) {
    case 'doctor':
      return doctor();
    case 'data':
      return runDataCommand(argv.slice(1));
    case 'pretrain':
      return runPretrainCommand(argv.slice(1));
    case 'run':
      return runRunCommand(argv.slice(1));
    // loaded on demand: the report pulls in vega
    case 'eval':
      return (await import('./trimpi/suite.js')).runEvalCommand(argv.slice(1));
    case 'report':
      return (await import('./trimpi/suite.js')).runReportCommand(argv.slice(1));
    case 'tune':
      return tune(argv.slice(1));
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return 0;
    default:
      console.error(`trimpi: unknown command '${cmd}'\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
}, (e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
