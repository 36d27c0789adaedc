// The dashboard: the API key, the jobs table, the new-job form (uploads, memory plan, creation) and a job's detail
// (live loss chart and events from the event stream, checkpoints, result files, cancel / pause / resume).

import { api, apiBlob, apiKey, ApiError, followEvents, setUnauthorizedHandler } from './api.js';
import { drawLossChart } from './chart.js';
import { $, breakable, clear, fmtClock, fmtCount, fmtLoss, fmtMB, fmtSize, fmtTime, h } from './dom.js';

const REFRESH_MS = 3000;
const TERMINAL = ['succeeded', 'failed', 'cancelled'];
const STATUS_LABEL = { validating_files: 'validating files' };

/** The techniques the form offers, with the options it exposes (blank = the plugin's default, shown as placeholder). */
const TECHNIQUES = {
  lora: [{ key: 'r', label: 'Rank r', placeholder: '8' }, { key: 'alpha', label: 'Alpha', placeholder: '16' }, { key: 'dropout', label: 'Dropout', placeholder: '0' }],
  full: [],
  adalora: [{ key: 'initR', label: 'Initial rank', placeholder: '12' }, { key: 'targetR', label: 'Target rank', placeholder: '8' }, { key: 'alpha', label: 'Alpha', placeholder: '8' }],
  adapters: [{ key: 'bottleneckSize', label: 'Bottleneck', placeholder: '256' }, { key: 'kind', label: 'Kind', choices: ['series', 'parallel'] }],
  prefix: [{ key: 'virtualTokens', label: 'Virtual tokens', placeholder: '20' }],
  prompt: [{ key: 'virtualTokens', label: 'Virtual tokens', placeholder: '20' }],
  'p-tuning': [{ key: 'virtualTokens', label: 'Virtual tokens', placeholder: '20' }, { key: 'encoder', label: 'Encoder', choices: ['mlp', 'lstm'] }],
};

const state = {
  timer: 0,
  jobs: [],
  /** job id → { step, total } from its latest metrics event; `final` once the job finished (never fetched again). */
  progress: new Map(),
  uploads: { training: null, validation: null },
  detail: null,
};

// ---------------------------------------------------------------------------------------------------------------
// The API key

function showKeyDialog(message = '') {
  stopRefresh();
  $('#key-error').textContent = message;
  $('#key-input').value = '';
  const d = $('#key-dialog');
  if (!d.open) d.showModal();
  $('#key-input').focus();
}

function showKeyLabel() {
  const k = apiKey.get();
  $('#key-label').textContent = k ? `Key …${k.slice(-4)}` : 'No API key';
  $('#forget-key').hidden = !k;
}

async function saveKey(ev) {
  ev.preventDefault();
  const key = $('#key-input').value.trim();
  if (!key) return void ($('#key-error').textContent = 'Enter an API key.');
  $('#key-save').disabled = true;
  try {
    await api('/fine_tuning/jobs?limit=1', { key });
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      $('#key-error').textContent = `The server refused this key: ${e.message}`;
      return;
    }
    // Anything else (the server is busy, a route is missing) is not about the key: keep it.
  } finally {
    $('#key-save').disabled = false;
  }
  apiKey.set(key);
  $('#key-dialog').close();
  start();
}

function forgetKey() {
  apiKey.forget();
  closeDetail();
  state.jobs = [];
  state.progress.clear();
  renderJobs();
  showKeyLabel();
  showKeyDialog();
}

// ---------------------------------------------------------------------------------------------------------------
// Jobs table

function badge(status) {
  return h('span', { class: `badge badge-${status}` }, STATUS_LABEL[status] ?? status);
}

/** The technique names of a job, from its run config's plugins (names, or `{ name, options }`). */
function technique(job) {
  const plugins = job.tuneforge?.config?.plugins;
  if (!Array.isArray(plugins) || plugins.length === 0) return '—';
  return plugins.map((p) => (typeof p === 'string' ? p : p?.name ?? '?')).join(' + ');
}

function progressCell(job) {
  const p = state.progress.get(job.id);
  if (!p || !p.step) return h('td', { class: 'muted' }, job.status === 'succeeded' ? 'done' : '—');
  const pct = p.total ? Math.min(100, (100 * p.step) / p.total) : 0;
  const bar = h('span', { class: 'bar' }, h('span', { class: `bar-fill bar-${job.status}` }));
  bar.firstChild.style.width = `${pct}%`;
  return h('td', { class: 'progress' }, bar, h('span', { class: 'num' }, p.total ? `${p.step} / ${p.total}` : `${p.step}`));
}

/** Today's jobs by time, older ones by date with the time below. */
function createdCell(seconds) {
  const [day, time] = fmtTime(seconds).split(' ');
  const today = fmtTime(Date.now() / 1000).split(' ')[0];
  return day === today ? [time, h('span', {}, 'today')] : [day, h('span', {}, time)];
}

function renderJobs() {
  const body = clear($('#jobs-body'));
  const selected = state.detail?.id;
  for (const job of state.jobs) {
    const open = () => openJob(job.id);
    body.append(h('tr', {
      class: job.id === selected ? 'selected' : '', tabindex: 0, dataset: { jobId: job.id },
      onclick: open, onkeydown: (e) => (e.key === 'Enter' || e.key === ' ') && (e.preventDefault(), open()),
    },
    h('td', { class: 'mono job-id', title: job.id }, job.id),
    h('td', {}, job.model),
    h('td', {}, technique(job)),
    h('td', {}, badge(job.status)),
    progressCell(job),
    h('td', { class: 'created', title: fmtTime(job.created_at, true) }, ...createdCell(job.created_at)),
    h('td', { class: 'mono wrap ft-model' }, job.fine_tuned_model ? breakable(job.fine_tuned_model) : '—')));
  }
  $('#jobs-empty').hidden = state.jobs.length > 0;
}

/** The latest metrics event among a job's newest events: its step and total steps. */
async function fetchProgress(job) {
  const page = await api(`/fine_tuning/jobs/${job.id}/events?limit=100`);
  const m = page.data.find((e) => e.type === 'metrics');
  const prev = state.progress.get(job.id);
  const next = m ? { step: m.data?.step ?? 0, total: m.data?.total_steps ?? null } : prev ?? { step: 0, total: null };
  state.progress.set(job.id, { ...next, final: TERMINAL.includes(job.status) });
}

async function refreshJobs() {
  const page = await api('/fine_tuning/jobs?limit=50');
  state.jobs = page.data;
  const stale = state.jobs.filter((j) => {
    const p = state.progress.get(j.id);
    if (j.id === state.detail?.id && state.detail.streaming) return false; // the stream keeps it current
    if (j.status === 'running' || j.status === 'paused') return true;
    return TERMINAL.includes(j.status) ? !p?.final : false;
  });
  await Promise.all(stale.map((j) => fetchProgress(j).catch(() => {})));
  renderJobs();
  $('#jobs-updated').textContent = `Updated ${new Date().toLocaleTimeString()}`;
}

async function tick() {
  try {
    await Promise.all([refreshJobs(), state.detail ? refreshDetail() : null]);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) $('#jobs-updated').textContent = `Refresh failed: ${e.message}`;
  }
}

function stopRefresh() {
  clearInterval(state.timer);
  state.timer = 0;
}

function start() {
  showKeyLabel();
  stopRefresh();
  loadModels();
  tick();
  state.timer = setInterval(tick, REFRESH_MS);
}

// ---------------------------------------------------------------------------------------------------------------
// The form: models, uploads, technique options, plan, submit

async function loadModels() {
  const select = $('#f-model');
  try {
    const page = await api('/models');
    const base = page.data.filter((m) => !m.id.startsWith('ft:'));
    const current = select.value;
    clear(select).append(
      h('option', { value: '' }, base.length ? 'Choose a model…' : 'No base models on this server'),
      ...base.map((m) => h('option', { value: m.id }, m.id)),
    );
    select.value = base.some((m) => m.id === current) ? current : base.length === 1 ? base[0].id : '';
  } catch (e) {
    clear(select).append(h('option', { value: '' }, 'Models unavailable'));
    fieldError('model', `Could not list models: ${e.message}`);
  }
}

function renderTechniqueOptions() {
  const box = clear($('#technique-options'));
  for (const o of TECHNIQUES[$('#f-technique').value] ?? []) {
    const input = o.choices
      ? h('select', { id: `opt-${o.key}`, dataset: { option: o.key } }, ...o.choices.map((c) => h('option', { value: c }, c)))
      : h('input', { id: `opt-${o.key}`, inputmode: 'decimal', placeholder: o.placeholder, dataset: { option: o.key } });
    box.append(h('label', { class: 'field', dataset: { param: `tuneforge.plugins.0.options.${o.key}` } }, h('span', { class: 'label' }, o.label), input, h('span', { class: 'field-error' })));
  }
}

function uploadStatus(which, cls, text, id) {
  clear($(`#${which}-status`)).append(h('span', { class: `dot dot-${cls}` }), h('span', {}, text, id ? h('span', { class: 'mono file-id' }, id) : null));
}

/** Uploads the chosen file, then polls it until the server's validation says processed or error. */
async function upload(which) {
  const input = $(`#f-${which}`);
  const file = input.files?.[0];
  const param = `${which}_file`;
  fieldError(param, '');
  state.uploads[which] = null;
  if (!file) return void clear($(`#${which}-status`));
  const token = {};
  state.uploads[which] = { token, id: null, status: 'uploading' };
  uploadStatus(which, 'busy', `Uploading ${file.name} (${fmtSize(file.size)})…`);
  try {
    const form = new FormData();
    form.append('purpose', 'fine-tune');
    form.append('file', file, file.name);
    let f = await api('/files', { method: 'POST', form });
    for (;;) {
      if (state.uploads[which]?.token !== token) return; // another file was chosen meanwhile
      state.uploads[which] = { token, id: f.id, status: f.status };
      const what = `${f.filename} · ${fmtSize(f.bytes)}`;
      if (f.status === 'processed') return void uploadStatus(which, 'ok', `${what} · validated`, f.id);
      if (f.status === 'error') {
        uploadStatus(which, 'error', `${what} · failed validation`, f.id);
        return void fieldError(param, f.status_details ?? 'the file failed validation');
      }
      uploadStatus(which, 'busy', `${what} · validating…`, f.id);
      await new Promise((r) => setTimeout(r, 700));
      f = await api(`/files/${f.id}`);
    }
  } catch (e) {
    if (state.uploads[which]?.token !== token) return;
    state.uploads[which] = null;
    uploadStatus(which, 'error', 'Upload failed');
    fieldError(param, e.message);
  }
}

function fieldError(param, message) {
  const field = document.querySelector(`#job-form [data-param="${param}"]`);
  if (!field) return false;
  field.classList.toggle('invalid', Boolean(message));
  field.querySelector('.field-error').textContent = message;
  return true;
}

function clearErrors() {
  for (const f of document.querySelectorAll('#job-form .field.invalid')) {
    f.classList.remove('invalid');
    f.querySelector('.field-error').textContent = '';
  }
  $('#form-error').hidden = true;
  $('#form-ok').hidden = true;
}

/** The form field an API `param` names: the longest `data-param` it starts with (hyperparameters wherever sent). */
function fieldFor(param) {
  if (!param) return null;
  const p = param.replace(/^method\.(supervised|dpo)\./, '');
  let best = null;
  for (const el of document.querySelectorAll('#job-form [data-param]')) {
    const d = el.dataset.param;
    if ((p === d || p.startsWith(`${d}.`) || p.startsWith(`${d}[`)) && (!best || d.length > best.dataset.param.length)) best = el;
  }
  return best;
}

function showFormError(message, param) {
  const field = fieldFor(param);
  const label = field?.querySelector('.label')?.firstChild?.textContent?.trim();
  if (field) {
    field.classList.add('invalid');
    field.querySelector('.field-error').textContent = message;
    if (field.closest('details')) field.closest('details').open = true;
  }
  const box = $('#form-error');
  clear(box).append(label ? h('strong', {}, `${label}: `) : '', message);
  box.hidden = false;
}

class FormProblem extends Error {
  constructor(param, message) {
    super(message);
    this.param = param;
  }
}

function numberOrAuto(id, param, integer) {
  const raw = $(id).value.trim();
  if (raw === '' || raw.toLowerCase() === 'auto') return 'auto';
  const n = Number(raw);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) throw new FormProblem(param, `enter ${integer ? 'a whole number' : 'a number'} or “auto”`);
  return n;
}

function optionalInt(id, param) {
  const raw = $(id).value.trim();
  if (raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n)) throw new FormProblem(param, 'enter a whole number');
  return n;
}

/** The job-create body the form describes (also the body of a plan). */
function jobBody() {
  const body = { model: $('#f-model').value };
  if (!body.model) throw new FormProblem('model', 'choose a base model');
  const training = state.uploads.training;
  if (!training) throw new FormProblem('training_file', 'upload a training file (JSONL)');
  if (!training.id) throw new FormProblem('training_file', 'wait for the upload to finish');
  body.training_file = training.id;
  if (state.uploads.validation?.id) body.validation_file = state.uploads.validation.id;
  const hyperparameters = {
    n_epochs: numberOrAuto('#f-epochs', 'hyperparameters.n_epochs', true),
    batch_size: numberOrAuto('#f-batch', 'hyperparameters.batch_size', true),
    learning_rate_multiplier: numberOrAuto('#f-lr', 'hyperparameters.learning_rate_multiplier', false),
  };
  body.method = { type: 'supervised', supervised: { hyperparameters } };
  const suffix = $('#f-suffix').value.trim();
  if (suffix) body.suffix = suffix;
  const seed = optionalInt('#f-seed', 'seed');
  if (seed !== undefined) body.seed = seed;

  const name = $('#f-technique').value;
  const options = {};
  for (const el of document.querySelectorAll('#technique-options [data-option]')) {
    const raw = el.value.trim();
    if (raw === '') continue;
    const n = Number(raw);
    options[el.dataset.option] = el.tagName === 'SELECT' || !Number.isFinite(n) ? raw : n;
  }
  const tuneforge = { plugins: [Object.keys(options).length ? { name, options } : name] };
  const steps = optionalInt('#f-steps', 'tuneforge.train.steps');
  if (steps !== undefined) tuneforge.train = { steps };
  body.tuneforge = tuneforge;
  return body;
}

function busy(on) {
  $('#plan-btn').disabled = on;
  $('#submit-btn').disabled = on;
}

async function plan() {
  clearErrors();
  busy(true);
  try {
    const p = await api('/plans', { method: 'POST', json: jobBody() });
    renderPlan(p);
  } catch (e) {
    showFormError(e.message, e.param);
  } finally {
    busy(false);
  }
}

function renderPlan(p) {
  const box = clear($('#plan'));
  box.hidden = false;
  box.classList.remove('stale');
  const items = [...(p.items ?? [])].sort((a, b) => b.bytes - a.bytes);
  const max = Math.max(1, ...items.map((i) => i.bytes));
  const facts = [
    ['Parameters', fmtCount(p.parameters)],
    ['Trainable', p.parameters ? `${fmtCount(p.trainableParameters)} (${((100 * p.trainableParameters) / p.parameters).toPrecision(2)}%)` : fmtCount(p.trainableParameters)],
    ['Micro-batch', p.microBatchSize ? `${p.microBatchSize}${p.accumulationSteps > 1 ? ` × ${p.accumulationSteps} accumulated` : ''}` : '—'],
    ['Sequence', p.dims?.T ?? '—'],
    ['Checkpointing', p.checkpointing ? 'on' : 'off'],
  ];
  if (p.budget !== null && p.budget !== undefined) facts.push(['Budget', String(p.budget)]);
  box.append(
    h('div', { class: 'plan-head' }, h('span', { class: 'muted' }, 'Planned peak memory'), h('span', { id: 'plan-total', class: 'plan-total' }, fmtMB(p.totalBytes))),
    h('dl', { class: 'plan-facts' }, ...facts.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    h('table', { class: 'plan-items' }, h('tbody', {}, ...items.map((i) => {
      const fill = h('span', { class: 'bar-fill' });
      fill.style.width = `${(100 * i.bytes) / max}%`;
      return h('tr', { title: i.note ?? '' }, h('td', {}, i.component), h('td', { class: 'plan-bar' }, h('span', { class: 'bar' }, fill)), h('td', { class: 'num nowrap' }, fmtMB(i.bytes)));
    }))),
  );
}

async function submit(ev) {
  ev.preventDefault();
  clearErrors();
  busy(true);
  try {
    const job = await api('/fine_tuning/jobs', { method: 'POST', json: jobBody() });
    const ok = clear($('#form-ok'));
    ok.append('Created ', h('span', { class: 'mono' }, job.id));
    ok.hidden = false;
    await refreshJobs().catch(() => {});
    openJob(job.id);
  } catch (e) {
    showFormError(e.message, e.param);
  } finally {
    busy(false);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Job detail

function closeDetail() {
  state.detail?.stop?.();
  state.detail = null;
  $('#detail').hidden = true;
  renderJobs();
}

function openJob(id) {
  if (state.detail?.id === id) return void $('#detail').scrollIntoView({ behavior: 'smooth', block: 'start' });
  state.detail?.stop?.();
  const d = { id, job: null, events: [], seen: new Set(), train: new Map(), evals: new Map(), checkpointsAt: '', resultsFor: '', streaming: true, stop: null };
  state.detail = d;
  for (const sel of ['#detail-meta', '#events', '#checkpoints', '#results', '#detail-status']) clear($(sel));
  $('#detail-title').textContent = id;
  $('#detail-error').hidden = true;
  $('#action-error').hidden = true;
  $('#checkpoints-empty').hidden = false;
  $('#results-empty').hidden = false;
  $('#events-count').textContent = '';
  drawChart(d);
  $('#detail').hidden = false;
  renderJobs();
  d.stop = followEvents(id, {
    event: (e) => onEvent(d, e),
    state: (s, err) => {
      if (state.detail !== d) return;
      d.streaming = s === 'live' || s === 'reconnecting';
      $('#stream-state').textContent = { live: '● live', reconnecting: 'reconnecting…', ended: '', error: `stream: ${err?.message}` }[s] ?? '';
      $('#stream-state').className = `small stream-${s}`;
      if (s === 'ended') {
        // The job finished: pick up anything written after the stream's last look (the page is newest first).
        api(`/fine_tuning/jobs/${id}/events?limit=100`).then((page) => page.data.reverse().forEach((e) => onEvent(d, e))).catch(() => {});
        refreshDetail().catch(() => {});
      }
    },
  });
  refreshDetail().catch((e) => showDetailError(e.message, $('#action-error')));
  $('#detail').scrollIntoView({ behavior: 'smooth', block: 'start' });
}

let drawQueued = false;
function drawChart(d) {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => {
    drawQueued = false;
    if (state.detail !== d) return;
    drawLossChart($('#loss-chart'), [...d.train], [...d.evals]);
    const last = [...d.train].sort((a, b) => b[0] - a[0])[0];
    const lastEval = [...d.evals].sort((a, b) => b[0] - a[0])[0];
    $('#chart-summary').textContent = last ? `step ${last[0]} · train ${fmtLoss(last[1])}${lastEval ? ` · eval ${fmtLoss(lastEval[1])}` : ''}` : '';
  });
}

let refreshSoon = 0;
function onEvent(d, e) {
  if (state.detail !== d || d.seen.has(e.id)) return;
  d.seen.add(e.id);
  d.events.unshift(e);
  if (e.type === 'metrics' && e.data) {
    const step = e.data.step;
    const train = e.data.train_loss ?? e.data.loss;
    const evalLoss = e.data.valid_loss ?? e.data.eval_loss;
    if (typeof step === 'number') {
      if (typeof train === 'number') d.train.set(step, train);
      if (typeof evalLoss === 'number') d.evals.set(step, evalLoss);
      state.progress.set(d.id, { step, total: e.data.total_steps ?? null, final: false });
    }
    drawChart(d);
  } else {
    // A message may mean a status change: look at the job again shortly.
    clearTimeout(refreshSoon);
    refreshSoon = setTimeout(() => refreshDetail().catch(() => {}), 250);
  }
  const list = $('#events');
  list.prepend(eventItem(e));
  while (list.children.length > 300) list.lastChild.remove();
  $('#events-count').textContent = `${d.events.length}`;
}

function eventItem(e) {
  return h('li', { class: `event event-${e.level} event-type-${e.type}` },
    h('time', { class: 'mono' }, fmtClock(e.created_at)),
    h('span', { class: `level level-${e.level}` }, e.level),
    h('span', { class: 'msg' }, e.message));
}

/** The job's own error (from the job object); `#action-error` is for what the page tried (controls, downloads). */
function showDetailError(message, box = $('#detail-error')) {
  box.textContent = message;
  box.hidden = !message;
}

function hyperText(hp) {
  if (!hp) return '—';
  return `epochs ${hp.n_epochs ?? 'auto'} · batch ${hp.batch_size ?? 'auto'} · LR × ${hp.learning_rate_multiplier ?? 'auto'}`;
}

async function refreshDetail() {
  const d = state.detail;
  if (!d) return;
  const job = await api(`/fine_tuning/jobs/${d.id}`);
  if (state.detail !== d) return;
  d.job = job;
  const i = state.jobs.findIndex((j) => j.id === job.id);
  if (i >= 0 && state.jobs[i].status !== job.status) {
    state.jobs[i] = job;
    renderJobs();
  }
  clear($('#detail-status')).append(badge(job.status));
  const hp = job.method?.supervised?.hyperparameters ?? job.hyperparameters;
  const p = state.progress.get(job.id);
  const rows = [
    ['Model', job.model],
    ['Technique', technique(job)],
    ['Hyperparameters', hyperText(hp)],
    ['Progress', p?.step ? `step ${p.step}${p.total ? ` of ${p.total}` : ''}` : '—'],
    ['Created', fmtTime(job.created_at, true)],
    ['Finished', fmtTime(job.finished_at, true)],
    ['Trained tokens', fmtCount(job.trained_tokens)],
    ['Training file', job.training_file],
    ['Validation file', job.validation_file ?? '—'],
    ['Fine-tuned model', job.fine_tuned_model ? breakable(job.fine_tuned_model) : '—'],
  ];
  if (job.status === 'running' && job.estimated_finish) rows.push(['Estimated finish', fmtTime(job.estimated_finish, true)]);
  clear($('#detail-meta')).append(...rows.map(([k, v]) => h('div', { class: 'meta-item' }, h('dt', {}, k), h('dd', { class: /file|model$/i.test(k) && k !== 'Model' ? 'mono' : '' }, v))));
  showDetailError(job.error ? `${job.error.code}: ${job.error.message}` : '');
  $('#cancel-btn').disabled = TERMINAL.includes(job.status);
  $('#pause-btn').disabled = !['queued', 'running'].includes(job.status);
  $('#resume-btn').disabled = job.status !== 'paused';

  const key = `${job.status}:${job.result_files.length}:${d.events.length}`;
  if (key !== d.checkpointsAt) {
    d.checkpointsAt = key;
    const page = await api(`/fine_tuning/jobs/${d.id}/checkpoints?limit=100`);
    if (state.detail !== d) return;
    const body = clear($('#checkpoints'));
    for (const c of page.data) {
      body.append(h('tr', {}, h('td', { class: 'num' }, c.step_number), h('td', { class: 'mono wrap', title: c.id }, breakable(c.fine_tuned_model_checkpoint)), h('td', { class: 'num' }, fmtLoss(c.metrics?.train_loss ?? c.metrics?.loss))));
    }
    $('#checkpoints-empty').hidden = page.data.length > 0;
  }
  const ids = job.result_files.join(',');
  if (ids !== d.resultsFor) {
    d.resultsFor = ids;
    const files = await Promise.all(job.result_files.map((id) => api(`/files/${id}`).catch(() => ({ id, filename: id, bytes: null }))));
    if (state.detail !== d) return;
    clear($('#results')).append(...files.map(resultItem));
    $('#results-empty').hidden = files.length > 0;
  }
}

function resultItem(f) {
  const link = h('a', { href: '#', class: 'download', dataset: { fileId: f.id }, download: f.filename }, f.filename);
  link.addEventListener('click', async (ev) => {
    ev.preventDefault();
    if (link.classList.contains('loading')) return;
    link.classList.add('loading');
    try {
      const blob = await apiBlob(`/files/${f.id}/content`);
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: f.filename });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (e) {
      showDetailError(`Download of ${f.filename} failed: ${e.message}`, $('#action-error'));
    } finally {
      link.classList.remove('loading');
    }
  });
  return h('li', {}, link, h('span', { class: 'muted small nowrap' }, f.bytes === null ? '' : fmtSize(f.bytes)));
}

async function control(action) {
  const d = state.detail;
  if (!d) return;
  const box = $('#action-error');
  showDetailError('', box);
  try {
    await api(`/fine_tuning/jobs/${d.id}/${action}`, { method: 'POST' });
    await Promise.all([refreshDetail(), refreshJobs()]);
  } catch (e) {
    showDetailError(`${action[0].toUpperCase()}${action.slice(1)} failed: ${e.message}`, box);
  }
}

// ---------------------------------------------------------------------------------------------------------------

function init() {
  setUnauthorizedHandler((e) => showKeyDialog(apiKey.get() ? `The server refused the saved key (${e.message}). Enter another.` : ''));
  $('#key-form').addEventListener('submit', saveKey);
  $('#key-dialog').addEventListener('cancel', (e) => e.preventDefault()); // the page is useless without a key
  $('#forget-key').addEventListener('click', forgetKey);
  $('#f-technique').addEventListener('change', renderTechniqueOptions);
  $('#f-training').addEventListener('change', () => upload('training'));
  $('#f-validation').addEventListener('change', () => upload('validation'));
  $('#job-form').addEventListener('submit', submit);
  $('#job-form').addEventListener('input', () => $('#plan').classList.add('stale'));
  $('#plan-btn').addEventListener('click', plan);
  $('#cancel-btn').addEventListener('click', () => control('cancel'));
  $('#pause-btn').addEventListener('click', () => control('pause'));
  $('#resume-btn').addEventListener('click', () => control('resume'));
  $('#close-btn').addEventListener('click', closeDetail);
  renderTechniqueOptions();
  renderJobs();
  showKeyLabel();
  if (apiKey.get()) start();
  else showKeyDialog();
}

init();
