// The view of a LiveFigure (callbacks_widget/figure.py): draws its traces, whose `x` and `y` (and a heat map's `z`) name columns
// ('group/name') of its column groups, with the one plotly.js of the page.

const TYPED = {int32: Int32Array, float32: Float32Array, float64: Float64Array};

const decoded = new WeakMap();   // per group's value: its columns as typed arrays, decoded once

function column(model, ref) {
  const [group, name] = ref.split('/');
  const value = model.get(group) || {};
  if (!decoded.has(value)) decoded.set(value, {});
  const cols = decoded.get(value), c = value[name];
  if (!(name in cols) && c) {
    const v = c.data;
    const bytes = v instanceof ArrayBuffer ? v : v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength);
    cols[name] = new TYPED[c.dtype](bytes);
  }
  return cols[name] || [];
}

function rows(z, n) {
  // a heat map's `z` column: `n` rows (one a y value) of `z.length / n` values, one row after the other
  const m = n ? z.length / n : 0;
  return m ? Array.from({length: n}, (_, i) => z.subarray(i * m, (i + 1) * m)) : [];
}

function zoomOf(ev) {
  // plotly_relayout of a zoom: {'xaxis2.range[0]': a, 'xaxis2.range[1]': b} or {'xaxis.range': [a, b]};
  // of an autoscale: {'xaxis.autorange': true}
  for (const [k, v] of Object.entries(ev)) {
    if (/^xaxis\d*\.autorange$/.test(k) && v === true) return null;
    const m = /^(xaxis\d*)\.range\[0\]$/.exec(k);
    if (m && (m[1] + '.range[1]') in ev) return [v, ev[m[1] + '.range[1]']];
    if (/^xaxis\d*\.range$/.test(k) && Array.isArray(v)) return v.slice(0, 2);
  }
  return undefined;
}

async function loadPlotly(model) {
  // one import per page and plotly.js build, shared by every view; the gzip trailer (CRC-32 and size) names it
  const lib = await model.widget_manager.get_model(model.get('library').slice('IPY_MODEL_'.length));
  const v = lib.get('code');
  const gz = v instanceof ArrayBuffer ? new Uint8Array(v) : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  const key = gz.slice(-8).join(',');
  const cache = (globalThis[Symbol.for('callbacks_widget.plotly')] ??= new Map());
  if (!cache.has(key)) cache.set(key, (async () => {
    const js = await new Response(new Blob([gz]).stream().pipeThrough(new DecompressionStream('gzip'))).blob();
    const url = URL.createObjectURL(new Blob([js], {type: 'text/javascript'}));
    try { return (await import(url)).default; } finally { URL.revokeObjectURL(url); }
  })());
  return cache.get(key);
}

const LIVE = 'callbacks-widget-live';

function hidePicture(el, mark) {
  // mark the output area of this view's cell as live; the page's one rule hides the picture there
  const area = el.closest('.jp-OutputArea, .output');
  if (!area) return null;
  if (!document.getElementById(LIVE)) {
    const style = Object.assign(document.createElement('style'), {id: LIVE});
    style.textContent = `.${LIVE} :is(.jp-OutputArea-child, .output_area):has(img[src*="${mark}"]) {display: none !important}`;
    document.head.appendChild(style);
  }
  area[LIVE] = (area[LIVE] || 0) + 1;
  area.classList.add(LIVE);
  return () => { if (--area[LIVE] === 0) area.classList.remove(LIVE); };
}

export default {
  async render({ model, el }) {
    const Plotly = await loadPlotly(model);
    const gd = document.createElement('div');
    el.appendChild(gd);
    const state = ['plot_layout', 'traces', ...model.get('_groups')];   // what a redraw reads
    let pending = false, busy = false, alive = true, hooked = false, shown = null;
    const redraw = async () => {
      busy = true;
      try { while (pending && alive) {
        pending = false;
        const t0 = performance.now();
        const data = model.get('traces').map((t) => {
          const d = {...t, x: column(model, t.x), y: column(model, t.y)};
          if (t.z) d.z = rows(column(model, t.z), d.y.length);
          return d;
        });
        await Plotly.react(gd, data, structuredClone(model.get('plot_layout')), {displaylogo: false});
        if (!shown && alive && el.isConnected) shown = hidePicture(el, model.get('_picture_mark'));
        if (!hooked) {
          hooked = true;
          gd.on('plotly_relayout', (ev) => {
            const range = zoomOf(ev);
            if (range !== undefined) model.send({event: 'zoom', range});
          });
        }
        // changes that arrive meanwhile are drawn together, after a pause as long as the draw:
        // at most half of a slow page's time goes to drawing
        await new Promise((resolve) => setTimeout(resolve, Math.max(performance.now() - t0, 20)));
      } } finally { busy = false; }
    };
    const draw = () => { pending = true; if (!busy) redraw(); };
    for (const name of state) model.on('change:' + name, draw);
    const resize = new ResizeObserver(() => {
      if (gd._fullLayout) Plotly.Plots.resize(gd);
      if (!shown && gd._fullLayout && el.isConnected) shown = hidePicture(el, model.get('_picture_mark'));
    });
    resize.observe(el);
    draw();
    return () => {
      alive = false;
      if (shown) shown();
      resize.disconnect();
      for (const name of state) model.off('change:' + name, draw);
      Plotly.purge(gd);
    };
  },
};
