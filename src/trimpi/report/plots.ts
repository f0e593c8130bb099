// The report's plots: Vega-Lite specs, compiled by vega-lite and rendered to SVG strings by vega in
// Node (View.toSVG() needs no canvas), to be inlined in the page.
import { parse, View } from 'vega';
import { compile, TopLevelSpec } from 'vega-lite';

const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
const CONFIG = {
  font: FONT,
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: '#eee' },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 260 },
  header: { labelFontSize: 12, titleFontSize: 12 },
  view: { stroke: '#ddd' },
  range: { category: ['#4c78a8', '#f58518', '#54a24b', '#e45756', '#72b7b2', '#b279a2', '#ff9da6', '#9d755d', '#bab0ac', '#eeca3b'] },
} as const;

let plotCounter = 0;

/** Renders a Vega-Lite spec to an SVG string; element ids are made unique so that many SVGs share a page. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const vg = compile({ ...spec, config: { ...CONFIG, ...(spec.config ?? {}) } } as TopLevelSpec).spec;
  const view = new View(parse(vg), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    const p = `p${++plotCounter}-`;
    return svg.replace(/\bid="([^"]+)"/g, `id="${p}$1"`).replace(/url\(#([^)]+)\)/g, `url(#${p}$1)`).replace(/href="#([^"]+)"/g, `href="#${p}$1"`);
  } finally {
    view.finalize();
  }
}

/** Training loss per step, one line per stage. */
export function lossSpec(rows: readonly { stage: string; step: number; loss: number }[]): TopLevelSpec {
  return {
    width: 520, height: 220, data: { values: [...rows] },
    mark: { type: 'line', point: rows.length < 60 },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'step', axis: { format: 'd', tickMinStep: 1 } },
      y: { field: 'loss', type: 'quantitative', title: 'training loss', scale: { zero: false }, axis: { format: '.3~g' } },
      color: { field: 'stage', type: 'nominal', title: 'stage' },
    },
  };
}

/** RL metrics per rollout step: one small panel per metric, one line per stage. */
export function rlSpec(rows: readonly { stage: string; step: number; metric: string; value: number }[], metrics: readonly string[]): TopLevelSpec {
  return {
    data: { values: [...rows] },
    facet: { field: 'metric', type: 'nominal', title: null, sort: [...metrics] },
    columns: 3,
    spec: {
      width: 200, height: 120,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'step', type: 'quantitative', title: 'rollout step', axis: { format: 'd', tickMinStep: 1 } },
        y: { field: 'value', type: 'quantitative', title: null, scale: { zero: false }, axis: { format: '.3~g' } },
        color: { field: 'stage', type: 'nominal', title: 'stage' },
      },
    },
    resolve: { scale: { y: 'independent' } },
  };
}

/** Grouped bars: `value` per `x` category, one bar per `group` (e.g. accuracy per method and setting). */
export function groupedBarSpec(rows: readonly { x: string; group: string; value: number }[], o: { xTitle: string; yTitle: string; groupTitle: string; percent?: boolean; xOrder?: readonly string[] }): TopLevelSpec {
  return {
    width: { step: 18 * Math.max(1, new Set(rows.map((r) => r.group)).size) + 10 }, height: 220, data: { values: [...rows] },
    mark: { type: 'bar' },
    encoding: {
      x: { field: 'x', type: 'nominal', title: o.xTitle, sort: o.xOrder ? [...o.xOrder] : null, axis: { labelAngle: -35, labelLimit: 220 } },
      xOffset: { field: 'group', type: 'nominal' },
      y: { field: 'value', type: 'quantitative', title: o.yTitle, axis: o.percent ? { format: '.0%' } : {}, ...(o.percent ? { scale: { domain: [0, 1] } } : {}) },
      color: { field: 'group', type: 'nominal', title: o.groupTitle },
      tooltip: [{ field: 'x', type: 'nominal' }, { field: 'group', type: 'nominal' }, { field: 'value', type: 'quantitative', format: o.percent ? '.1%' : '.3~f' }],
    },
  };
}

/** Panels of grouped bars, one per `panel` with its own y scale (efficiency: tokens, positions, prefill time). */
export function panelBarSpec(rows: readonly { panel: string; x: string; group: string; value: number }[], o: { groupTitle: string; panelOrder?: readonly string[]; groupOrder?: readonly string[] }): TopLevelSpec {
  return {
    data: { values: [...rows] },
    facet: { field: 'panel', type: 'nominal', title: null, sort: o.panelOrder ? [...o.panelOrder] : 'ascending' },
    columns: 3,
    spec: {
      width: { step: 26 }, height: 180,
      mark: { type: 'bar' },
      encoding: {
        x: { field: 'x', type: 'nominal', title: null, sort: null, axis: { labelAngle: -35 } },
        xOffset: { field: 'group', type: 'nominal', sort: o.groupOrder ? [...o.groupOrder] : 'ascending' },
        y: { field: 'value', type: 'quantitative', title: null, axis: { format: '~s' } },
        color: { field: 'group', type: 'nominal', title: o.groupTitle, sort: o.groupOrder ? [...o.groupOrder] : 'ascending' },
      },
    },
    resolve: { scale: { y: 'independent', x: 'independent' } },
  };
}
