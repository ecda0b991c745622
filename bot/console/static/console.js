// The PatchGate console page: renders what the stand-in holds, as the chosen person sees
// it, and sends that person's actions to the console (which signs them for PatchGate).
// No framework, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const S = {
  user: params.get("as") || localStorage.getItem("pg-user") || "U0999OPERA",
  channel: "C0123456789", tab: "channel", thread: null, version: -1,
  data: null, modalKey: null, seq: 0,
};
const EMOJI = { white_check_mark: "✅", x: "❌", warning: "⚠️", rotating_light: "🚨",
  hourglass: "⏳", lock: "🔒", no_entry: "⛔", rocket: "🚀", hourglass_flowing_sand: "⏳",
  heavy_check_mark: "✔️", arrows_counterclockwise: "🔄", large_green_circle: "🟢",
  red_circle: "🔴", large_yellow_circle: "🟡", pause_button: "⏸️", stop_sign: "🛑",
  information_source: "ℹ️", calendar: "📅", package: "📦", memo: "📝", fire: "🔥",
  raised_hand: "✋", rewind: "⏪", tada: "🎉", hourglass_done: "⌛", lock_with_ink_pen: "🔏",
  ice_cube: "🧊", octagonal_sign: "🛑", snowflake: "❄️", clipboard: "📋", mag: "🔍", bell: "🔔", eyes: "👀", wrench: "🔧" };

function esc(s) {
  return String(s ?? "").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}
function name(id) {
  const p = (S.data?.people || []).find((x) => x.id === id);
  return p ? p.name : id;
}
function chanName(id) {
  const c = (S.data?.channels || []).find((x) => x.id === id);
  return c ? c.name : id;
}

// Slack mrkdwn (text arrives with &, <, > escaped by the sender as Slack requires)
function mrkdwn(text) {
  let s = String(text ?? "").replace(/"/g, "&quot;");
  s = s.replace(/</g, "&lt;").replace(/>/g, "&gt;");
  const code = [];
  s = s.replace(/```([\s\S]*?)```/g, (_, c) => { code.push(`<pre>${c}</pre>`); return `\u0000${code.length - 1}\u0000`; });
  s = s.replace(/`([^`\n]+)`/g, (_, c) => { code.push(`<code>${c}</code>`); return `\u0000${code.length - 1}\u0000`; });
  s = s.replace(/&lt;([^&|]*?)(?:\|([^&]*?))?&gt;/g, (m, target, label) => {
    if (target.startsWith("@")) return `<span class="mention">@${esc(name(target.slice(1)))}</span>`;
    if (target.startsWith("#")) return `<span class="mention">#${esc(label || chanName(target.slice(1)))}</span>`;
    if (target.startsWith("!subteam^")) {
      const handle = (S.data?.groups || {})[target.slice(9)];
      return `<span class="mention">${esc(label || "@" + (handle || target.slice(9)))}</span>`;
    }
    if (target.startsWith("!")) return `<span class="mention">@${esc(label || target.slice(1))}</span>`;
    if (/^(https?|mailto):/.test(target)) return `<a href="${target}" target="_blank" rel="noopener">${label || target}</a>`;
    return m;
  });
  s = s.replace(/(^|[\s(])\*([^*\n]+)\*/g, "$1<b>$2</b>")
    .replace(/(^|[\s(])_([^_\n]+)_/g, "$1<i>$2</i>")
    .replace(/(^|[\s(])~([^~\n]+)~/g, "$1<s>$2</s>")
    .replace(/:([a-z0-9_+-]+):/g, (m, e) => EMOJI[e] || m)
    .replace(/\n/g, "<br>");
  return s.replace(/\u0000(\d+)\u0000/g, (_, i) => code[+i]);
}
function textObj(t) {
  if (!t) return "";
  return t.type === "mrkdwn" ? mrkdwn(t.text) : esc(t.text).replace(/:([a-z0-9_+-]+):/g, (m, e) => EMOJI[e] || m);
}

function el(tag, cls, html) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (html !== undefined) e.innerHTML = html;
  return e;
}

// --- Block Kit ---------------------------------------------------------------------------
function button(elm, block, ctx) {
  const b = el("button", "bk" + (elm.style ? " " + elm.style : ""), textObj(elm.text));
  b.type = "button";
  b.dataset.actionId = elm.action_id || "";
  b.dataset.blockId = block.block_id || "";
  if (elm.url) { b.onclick = () => window.open(elm.url, "_blank", "noopener"); return b; }
  b.onclick = () => (elm.confirm ? confirmThen(elm.confirm, () => click(elm, block, ctx)) : click(elm, block, ctx));
  return b;
}
function element(elm, block, ctx) {
  if (elm.type === "button") return button(elm, block, ctx);
  if (elm.type === "image") { const i = el("img", "bk"); i.src = elm.image_url; i.alt = elm.alt_text || ""; i.width = 24; return i; }
  return el("span", "hint", `[${esc(elm.type)}]`);
}
function renderBlocks(blocks, ctx) {
  const box = el("div", "blocks");
  for (const b of blocks || []) {
    let d;
    switch (b.type) {
      case "section": {
        d = el("div", "block section");
        const body = el("div");
        if (b.text) body.appendChild(el("div", "", textObj(b.text)));
        if (b.fields) { const f = el("div", "fields"); for (const x of b.fields) f.appendChild(el("div", "", textObj(x))); body.appendChild(f); }
        d.appendChild(body);
        if (b.accessory) d.appendChild(element(b.accessory, b, ctx));
        break;
      }
      case "header": d = el("div", "block header", textObj(b.text)); break;
      case "divider": d = el("hr", "block divider"); break;
      case "context":
        d = el("div", "block context");
        for (const x of b.elements || []) d.appendChild(x.type === "image" ? element(x, b, ctx) : el("span", "", textObj(x) + " "));
        break;
      case "actions":
        d = el("div", "block actions");
        for (const x of b.elements || []) d.appendChild(element(x, b, ctx));
        break;
      case "image": {
        d = el("figure", "block image");
        if (b.title) d.appendChild(el("figcaption", "", textObj(b.title)));
        const i = el("img", "bk"); i.src = b.image_url; i.alt = b.alt_text || ""; d.appendChild(i);
        break;
      }
      case "input": d = inputBlock(b, ctx); break;
      case "rich_text": d = el("div", "block", esc(JSON.stringify(b.elements).slice(0, 200))); break;
      default: d = el("div", "block hint", `[unsupported block ${esc(b.type)}]`);
    }
    if (b.block_id) d.dataset.blockId = b.block_id;
    box.appendChild(d);
  }
  return box;
}
function inputBlock(b, ctx) {
  const d = el("div", "block input");
  const id = `in-${b.block_id}`;
  const lab = el("label", "", textObj(b.label) + (b.optional ? ' <span class="hint">(optional)</span>' : ""));
  lab.htmlFor = id;
  d.appendChild(lab);
  const e = b.element || {};
  let f;
  if (e.type === "plain_text_input") {
    f = el(e.multiline ? "textarea" : "input");
    if (e.multiline) f.rows = 3;
    if (e.initial_value) f.value = e.initial_value;
    if (e.placeholder) f.placeholder = e.placeholder.text;
  } else if (e.type === "datepicker") {
    f = el("input"); f.type = "date"; if (e.initial_date) f.value = e.initial_date;
  } else if (e.type === "users_select") {
    f = el("select");
    f.appendChild(new Option("Choose a person", ""));
    for (const p of S.data.people) f.appendChild(new Option(p.name, p.id, false, p.id === e.initial_user));
  } else if (e.type === "static_select") {
    f = el("select");
    f.appendChild(new Option("Choose", ""));
    for (const o of e.options || []) f.appendChild(new Option(o.text.text, o.value, false, e.initial_option?.value === o.value));
  } else {
    f = el("input"); f.disabled = true; f.placeholder = `[${e.type}]`;
  }
  f.id = id;
  f.dataset.actionId = e.action_id || "";
  f.dataset.type = e.type || "";
  d.appendChild(f);
  if (b.hint) d.appendChild(el("div", "hint", textObj(b.hint)));
  d.appendChild(el("div", "field-error"));
  return d;
}
function formValues(root) {
  const values = {};
  root.querySelectorAll(".block.input").forEach((d) => {
    const f = d.querySelector("[data-action-id]");
    if (!f || !d.dataset.blockId) return;
    const t = f.dataset.type, v = f.value;
    let state = { type: t };
    if (t === "plain_text_input") state.value = v === "" ? null : v;
    else if (t === "datepicker") state.selected_date = v || null;
    else if (t === "users_select") state.selected_user = v || null;
    else if (t === "static_select") state.selected_option = v ? { value: v, text: { type: "plain_text", text: f.selectedOptions[0].text } } : null;
    values[d.dataset.blockId] = { [f.dataset.actionId]: state };
  });
  return values;
}

// --- actions --------------------------------------------------------------------------------
async function post(what, body) {
  const r = await fetch(`/console/${what}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user: S.user, ...body }) });
  const answer = await r.json().catch(() => ({}));
  if (!r.ok || answer.ok === false) flash(answer.error || `PatchGate answered ${answer.status || r.status}`);
  return answer;
}
function click(elm, block, ctx) {
  const body = { block_id: block.block_id || "", action_id: elm.action_id };
  if (ctx.view_id) post("click", { ...body, view_id: ctx.view_id, values: formValues($("modal")) });
  else post("click", { ...body, channel: ctx.channel, ts: ctx.ts });
}
function confirmThen(c, then) {
  const box = $("confirm");
  box.innerHTML = "";
  box.appendChild(el("h3", "", textObj(c.title) || "Are you sure?"));
  box.appendChild(el("div", "", textObj(c.text)));
  const row = el("div", "buttons");
  const no = el("button", "bk", textObj(c.deny) || "Cancel"); no.id = "confirm-deny";
  const yes = el("button", "bk " + (c.style || "primary"), textObj(c.confirm) || "Yes"); yes.id = "confirm-yes";
  no.onclick = () => { $("confirm-overlay").hidden = true; };
  yes.onclick = () => { $("confirm-overlay").hidden = true; then(); };
  row.append(no, yes); box.appendChild(row);
  $("confirm-overlay").hidden = false;
}
function flash(text) {
  const m = el("div", "msg ephemeral", `<div class="note">Only visible to you · console</div>${esc(text)}`);
  $("messages").appendChild(m);
}

// --- rendering -----------------------------------------------------------------------------
function messageEl(m, channel, { ephemeral = false, replies = 0 } = {}) {
  const d = el("div", "msg" + (ephemeral ? " ephemeral" : "") + (m.echo ? " echo" : ""));
  d.dataset.ts = m.ts;
  if (ephemeral) {
    if (m.echo) { d.textContent = m.text; return d; }
    d.appendChild(el("div", "note", "👁 Only visible to you"));
  }
  d.appendChild(el("div", "who", `PatchGate <small>APP</small>`));
  const ctx = { channel, ts: m.ts };
  if (m.blocks && m.blocks.length) d.appendChild(renderBlocks(m.blocks, ephemeral ? {} : ctx));
  else d.appendChild(el("div", "text", mrkdwn(m.text)));
  for (const f of m.files || []) d.appendChild(el("div", "file", `📎 ${esc(f.title || f.name)}`));
  if (m.edited) d.appendChild(el("span", "edited", "(edited)"));
  if (replies) {
    const r = el("button", "replies", `${replies} repl${replies === 1 ? "y" : "ies"}`);
    r.onclick = () => { S.thread = m.ts; render(); };
    d.appendChild(r);
  }
  return d;
}
function render() {
  const data = S.data;
  if (!data) return;
  const me = data.people.find((p) => p.id === S.user);
  $("role").textContent = me ? me.role : "";
  $("caption").hidden = !data.caption;
  $("caption").textContent = data.caption ? "▶ Tour: " + data.caption : "";
  const ul = $("channels"); ul.innerHTML = "";
  for (const c of data.channels) {
    const li = el("li"); const a = el("a", S.tab === "channel" && c.id === S.channel ? "active" : "", esc(c.id.startsWith("C") ? "# " + c.name : c.name));
    a.href = "#"; a.dataset.channel = c.id;
    a.onclick = (e) => { e.preventDefault(); S.tab = "channel"; S.channel = c.id; S.thread = null; render(); };
    li.appendChild(a); ul.appendChild(li);
  }
  $("nav-home").classList.toggle("active", S.tab === "home");
  $("messages").hidden = S.tab !== "channel"; $("composer").hidden = S.tab !== "channel";
  $("home").hidden = S.tab !== "home";
  if (S.tab === "home") renderHome(data); else renderChannel(data);
  renderModal(data);
}
function renderChannel(data) {
  const ch = data.channels.find((c) => c.id === S.channel) || data.channels[0];
  S.channel = ch.id;
  $("title").textContent = ch.id.startsWith("C") ? "# " + ch.name : ch.name;
  const box = $("messages"); const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  box.innerHTML = "";
  const top = ch.messages.filter((m) => !m.thread_ts);
  const eph = data.ephemeral.filter((e) => e.channel === ch.id && !e.thread_ts);
  const all = [...top.map((m) => ({ m, e: false })), ...eph.map((m) => ({ m, e: true }))]
    .sort((a, b) => parseFloat(a.m.ts) - parseFloat(b.m.ts));
  for (const { m, e } of all) {
    const replies = e ? 0 : ch.messages.filter((r) => r.thread_ts === m.ts).length;
    box.appendChild(messageEl(m, ch.id, { ephemeral: e, replies }));
  }
  if (atBottom) box.scrollTop = box.scrollHeight;
  const th = $("thread");
  const parent = S.thread && ch.messages.find((m) => m.ts === S.thread);
  th.hidden = !parent;
  if (parent) {
    const tm = $("thread-messages");
    const keep = tm.dataset.parent === S.thread ? tm.scrollTop : null;
    const end = keep === null || tm.scrollHeight - tm.scrollTop - tm.clientHeight < 40;
    tm.dataset.parent = S.thread; tm.innerHTML = "";
    tm.appendChild(messageEl(parent, ch.id));
    const rs = [...ch.messages.filter((m) => m.thread_ts === S.thread).map((m) => ({ m, e: false })),
      ...data.ephemeral.filter((e) => e.channel === ch.id && e.thread_ts === S.thread).map((m) => ({ m, e: true }))]
      .sort((a, b) => parseFloat(a.m.ts) - parseFloat(b.m.ts));
    for (const { m, e } of rs) tm.appendChild(messageEl(m, ch.id, { ephemeral: e }));
    tm.scrollTop = end ? tm.scrollHeight : keep;
  }
}
function renderHome(data) {
  $("title").textContent = "PatchGate · Home"; $("thread").hidden = true;
  const box = $("home"); box.innerHTML = "";
  if (!data.home) { box.appendChild(el("p", "hint", "Opening App Home…")); return; }
  box.appendChild(renderBlocks(data.home.blocks, { view_id: data.home_id }));
}
function renderModal(data) {
  const ov = $("overlay");
  if (!data.modal) { ov.hidden = true; S.modalKey = null; return; }
  const { id, view, errors } = data.modal;
  const key = id + JSON.stringify(view);
  const box = $("modal");
  if (key !== S.modalKey) {
    S.modalKey = key; box.innerHTML = ""; box.dataset.viewId = id;
    box.appendChild(el("h3", "", textObj(view.title)));
    box.appendChild(renderBlocks(view.blocks, { view_id: id }));
    box.appendChild(el("div", "field-error", "")).id = "modal-error";
    const row = el("div", "buttons");
    const close = el("button", "bk", textObj(view.close) || "Cancel"); close.id = "modal-close";
    close.onclick = () => post("close", { view_id: id });
    row.appendChild(close);
    if (view.submit) {
      const sub = el("button", "bk primary", textObj(view.submit)); sub.id = "modal-submit";
      sub.onclick = () => post("submit", { view_id: id, values: formValues(box) });
      row.appendChild(sub);
    }
    box.appendChild(row);
  }
  box.querySelectorAll(".block.input").forEach((d) => {
    const msg = (errors || {})[d.dataset.blockId] || "";
    d.classList.toggle("error", !!msg);
    d.querySelector(".field-error").textContent = msg;
  });
  $("modal-error").textContent = (errors || {})[""] || "";
  ov.hidden = false;
}

// --- wiring --------------------------------------------------------------------------------
async function poll() {
  for (;;) {
    const seq = S.seq;
    try {
      const r = await fetch(`/console/state?user=${encodeURIComponent(S.user)}&v=${S.version}`);
      if (seq !== S.seq) continue; // the person changed meanwhile
      if (r.ok) { S.data = await r.json(); S.version = S.data.version; render(); }
      else await new Promise((ok) => setTimeout(ok, 1000));
    } catch (e) { await new Promise((ok) => setTimeout(ok, 1000)); }
  }
}
function switchTo(user) {
  S.user = user; localStorage.setItem("pg-user", user); S.version = -1; S.seq++; S.modalKey = null;
  if (S.tab === "home") post("home", {});
  fetch(`/console/state?user=${encodeURIComponent(user)}&v=-1`).then((r) => r.json()).then((d) => { S.data = d; S.version = d.version; render(); });
}
async function init() {
  const d = await (await fetch(`/console/state?user=${encodeURIComponent(S.user)}&v=-1`)).json();
  if (d.error) { S.user = "U0999OPERA"; }
  const sel = $("person");
  const people = d.people || [];
  for (const p of people) sel.appendChild(new Option(`${p.name}`, p.id, false, p.id === S.user));
  sel.onchange = () => switchTo(sel.value);
  $("nav-home").onclick = (e) => { e.preventDefault(); S.tab = "home"; render(); post("home", {}); };
  $("thread-close").onclick = () => { S.thread = null; render(); };
  $("composer").onsubmit = (e) => {
    e.preventDefault();
    const text = $("box").value.trim();
    if (!text) return;
    const m = /^\/patch(?:\s+([\s\S]*))?$/.exec(text);
    if (!m) { flash("Only /patch commands go to PatchGate here (try /patch help)."); return; }
    $("box").value = "";
    post("command", { channel: S.channel, text: m[1] || "" });
  };
  if (!d.error) { S.data = d; S.version = d.version; render(); }
  poll();
}
init();
