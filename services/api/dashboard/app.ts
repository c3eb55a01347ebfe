/**
 * The fleet's dashboard: a page of the api, talking to the same /v1 routes with the same API key.
 * The key lives in this tab's sessionStorage only. Everything shown that came from the fleet (agent
 * output among it) is set as text, never as markup.
 */

type Json = Record<string, unknown>;
interface Session {
  id: string;
  projectId: string;
  status: string;
  phase: string;
  queuePosition?: number;
  createdAt: number;
  completedAt?: number;
  prompt: string;
  error?: { code: string; message: string };
  usage?: { calls: number; tokensIn: number; tokensOut: number; cachedTokens: number; cost: number };
  sandbox?: { id: string; provider: string };
}
interface LogLine {
  seq: number;
  at: number;
  kind: string;
  line: string;
}

const KEY = "fleet.apiKey";
const PROJECT = "fleet.project";
const ACTIVE = new Set(["pending", "running"]);
const main = document.getElementById("main") as HTMLElement;
/** Stops the timers and streams of the page being left. */
let leave: Array<() => void> = [];

class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Record<string, string> = {},
  ...children: Array<Node | string | null | undefined>
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) el.setAttribute(k, v);
  for (const c of children)
    if (c !== null && c !== undefined) el.append(typeof c === "string" ? document.createTextNode(c) : c);
  return el;
}

async function api<T = Json>(path: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(path, {
    ...init,
    headers: { authorization: `Bearer ${sessionStorage.getItem(KEY) ?? ""}`, ...(init.headers ?? {}) },
  });
  const text = await res.text();
  const body = text ? (JSON.parse(text) as Json) : {};
  if (!res.ok) {
    const e = (body.error ?? {}) as { code?: string; message?: string };
    throw new ApiError(res.status, `${res.status} ${e.code ?? ""}: ${e.message ?? res.statusText}`);
  }
  return body as T;
}

const age = (ms: number): string => {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 90 ? `${s} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
};
/**
 * Where a session is: the phase while it is active (with its queue position), and for an ended one
 * only where it ended if that was before its agent ran.
 */
function stage(s: Session): string {
  if (ACTIVE.has(s.status))
    return s.phase === "queued" && s.queuePosition !== undefined ? `queued (position ${s.queuePosition + 1})` : s.phase;
  return s.phase === "running" ? "" : `ended during ${s.phase}`;
}
const list = (items: string[], id?: string): HTMLElement =>
  items.length ? h("ul", id ? { id } : {}, ...items.map((i) => h("li", {}, i))) : h("p", { class: "muted" }, "None.");
const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const status = (s: string): HTMLElement => h("span", { class: `status ${s}`, "data-status": s }, s);
const errorBox = (message: string): HTMLElement => h("div", { class: "error", role: "alert" }, message);

function show(...nodes: Node[]): void {
  main.replaceChildren(...nodes);
}

/** Runs a page's loader, turning a refused key into the sign-in form with the api's reason. */
async function guarded(load: () => Promise<void>): Promise<void> {
  try {
    await load();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      sessionStorage.removeItem(KEY);
      signIn(`Your API key was refused (${err.message}). Enter a valid key.`);
    } else main.prepend(errorBox(err instanceof Error ? err.message : String(err)));
  }
}

function signIn(problem?: string): void {
  const input = h("input", { type: "password", name: "key", placeholder: "fk_…", autocomplete: "off", required: "" });
  const form = h("form", { class: "row", id: "signin" }, input, h("button", { type: "submit" }, "Use this key"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, input.value.trim());
    void route();
  });
  show(
    ...(problem ? [errorBox(problem)] : []),
    h(
      "section",
      {},
      h("h1", {}, "API key"),
      h("p", { class: "muted" }, "The key is kept in this browser tab only, and sent to this api alone."),
      form,
    ),
  );
}

async function sessionsPage(params: URLSearchParams): Promise<void> {
  const project = params.get("project") ?? sessionStorage.getItem(PROJECT) ?? "default";
  sessionStorage.setItem(PROJECT, project);
  const filter = params.get("status") ?? "all";
  const projectInput = h("input", { name: "project", value: project, "aria-label": "project" });
  const statusSelect = h("select", { name: "status", "aria-label": "status" });
  for (const s of ["all", "active", "pending", "running", "completed", "failed", "cancelled"]) {
    const o = h("option", { value: s }, s);
    if (s === filter) o.selected = true;
    statusSelect.append(o);
  }
  const form = h("form", { class: "row" }, projectInput, statusSelect, h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = `#/?project=${encodeURIComponent(projectInput.value.trim())}&status=${statusSelect.value}`;
  });
  const body = h("tbody");
  const more = h("button", { type: "button", hidden: "" }, "More");
  const table = h(
    "table",
    { id: "sessions" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", {}, "session"),
        h("th", {}, "status"),
        h("th", {}, "phase"),
        h("th", {}, "age"),
        h("th", { class: "optional" }, "prompt"),
      ),
    ),
    body,
  );
  show(h("section", {}, h("h1", {}, `Sessions of ${project}`), form, table, more));
  const keep = (s: Session): boolean =>
    filter === "all" || (filter === "active" ? ACTIVE.has(s.status) : s.status === filter);
  const row = (s: Session): HTMLElement =>
    h(
      "tr",
      { "data-id": s.id },
      h("td", { class: "id" }, h("a", { href: `#/session/${encodeURIComponent(s.id)}` }, s.id)),
      h("td", {}, status(s.status)),
      h("td", {}, stage(s)),
      h("td", {}, age(Date.now() - s.createdAt)),
      h("td", { class: "optional" }, s.prompt.slice(0, 80)),
    );
  let cursor: string | undefined;
  let pages = 0;
  const load = async (append: boolean): Promise<void> => {
    const q = new URLSearchParams({ projectId: project, limit: "50" });
    if (append && cursor) q.set("cursor", cursor);
    const page = await api<{ items: Session[]; nextCursor?: string }>(`/v1/sessions?${q}`);
    const rows = page.items.filter(keep).map(row);
    if (append) body.append(...rows);
    else body.replaceChildren(...rows);
    if (!body.children.length) body.append(h("tr", {}, h("td", { colspan: "6", class: "muted" }, "No sessions.")));
    cursor = page.nextCursor;
    more.hidden = !cursor;
    pages = append ? pages + 1 : 1;
  };
  more.addEventListener("click", () => void guarded(() => load(true)));
  await load(false);
  // The first page follows the fleet; pages added by hand stay as they are.
  const timer = setInterval(() => pages === 1 && void guarded(() => load(false)), 2_000);
  leave.push(() => clearInterval(timer));
}

/** A session's log as server-sent events over fetch (to send the key), resumed with Last-Event-ID. */
function followLog(id: string, into: HTMLElement, onEnd: () => void): () => void {
  const stop = new AbortController();
  let last = 0;
  const add = (l: LogLine): void => {
    if (l.seq <= last) return;
    last = l.seq;
    into.append(h("span", { class: "seq" }, `${String(l.seq).padStart(4)}  `), `${l.line}\n`);
    into.scrollTop = into.scrollHeight;
  };
  const run = async (): Promise<void> => {
    for (let attempt = 0; !stop.signal.aborted; attempt++) {
      try {
        const res = await fetch(`/v1/sessions/${encodeURIComponent(id)}/logs?follow=1`, {
          headers: {
            authorization: `Bearer ${sessionStorage.getItem(KEY) ?? ""}`,
            accept: "text/event-stream",
            ...(last ? { "last-event-id": String(last) } : {}),
          },
          signal: stop.signal,
        });
        if (!res.ok || !res.body) throw new ApiError(res.status, `the log stream answered ${res.status}`);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          for (let cut = buffer.indexOf("\n\n"); cut >= 0; cut = buffer.indexOf("\n\n")) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            const event = /^event: (.*)$/m.exec(block)?.[1];
            const data = block
              .split("\n")
              .filter((l) => l.startsWith("data: "))
              .map((l) => l.slice(6))
              .join("\n");
            if (event === "log" && data) add(JSON.parse(data) as LogLine);
            if (event === "end") {
              onEnd();
              return;
            }
          }
        }
      } catch (err) {
        if (stop.signal.aborted) return;
        if (err instanceof ApiError && err.status < 500 && err.status !== 429) throw err;
      }
      await new Promise((r) => setTimeout(r, Math.min(5_000, 500 * (attempt + 1))));
    }
  };
  void guarded(run);
  return () => stop.abort();
}

/** One bar of the setup chart; its width is set through the style object (the page allows no inline style markup). */
function bar(step: string, percent: number): HTMLElement {
  const el = h("div", { class: step === "execution" ? "bar execution" : "bar" });
  el.style.width = `${percent}%`;
  return el;
}

async function sessionPage(id: string): Promise<void> {
  const header = h("section", { id: "summary" });
  const setup = h("section", { id: "setup" }, h("h2", {}, "Setup"));
  const result = h("section", { id: "result" }, h("h2", {}, "Result"));
  const log = h("pre", { class: "log", id: "log", "aria-live": "polite" });
  show(header, h("section", {}, h("h2", {}, "Log"), log), setup, result);

  const render = async (): Promise<Session> => {
    const s = await api<Session>(`/v1/sessions/${encodeURIComponent(id)}`);
    const cancel = h("button", { type: "button", class: "danger", id: "cancel" }, "Cancel session");
    cancel.addEventListener(
      "click",
      () =>
        void guarded(async () => {
          cancel.disabled = true;
          await api(`/v1/sessions/${encodeURIComponent(id)}/cancel`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ reason: "cancelled from the dashboard" }),
          });
          cancel.textContent = "Cancel requested";
        }),
    );
    const u = s.usage;
    header.replaceChildren(
      h("h1", {}, s.id),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "status"),
        h("dd", {}, status(s.status), ` ${stage(s)}`),
        h("dt", {}, "project"),
        h("dd", {}, h("a", { href: `#/?project=${encodeURIComponent(s.projectId)}` }, s.projectId)),
        h("dt", {}, "age"),
        h("dd", {}, age(Date.now() - s.createdAt)),
        ...(s.sandbox ? [h("dt", {}, "sandbox"), h("dd", {}, `${s.sandbox.id} (${s.sandbox.provider})`)] : []),
        ...(s.error
          ? [h("dt", {}, "error"), h("dd", { class: "error-text" }, `${s.error.code}: ${s.error.message}`)]
          : []),
        ...(u
          ? [
              h("dt", {}, "model usage"),
              h(
                "dd",
                { id: "usage" },
                `${u.calls} call(s), ${u.tokensIn} tokens in (${u.cachedTokens} cached), ${u.tokensOut} out, cost ${u.cost}`,
              ),
            ]
          : []),
        h("dt", {}, "prompt"),
        h("dd", {}, s.prompt),
      ),
      ...(ACTIVE.has(s.status) ? [h("div", { class: "row" }, cancel)] : []),
    );
    return s;
  };

  const renderResult = async (): Promise<void> => {
    const m = await api<{
      steps: Array<{ step: string; ms: number }>;
      setupMs: number;
      executionMs: number;
      startedWarm: boolean;
    }>(`/v1/sessions/${encodeURIComponent(id)}/metrics`);
    const longest = Math.max(1, ...m.steps.map((s) => s.ms));
    const bars = h("div", { class: "bars", id: "setup-chart" });
    for (const s of m.steps)
      bars.append(
        h("span", {}, s.step),
        h("div", {}, bar(s.step, (100 * s.ms) / longest)),
        h("span", { class: "muted" }, secs(s.ms)),
      );
    setup.replaceChildren(
      h(
        "h2",
        {},
        `Setup ${secs(m.setupMs)}, execution ${secs(m.executionMs)}${m.startedWarm ? " (warm: a ready agent from the pool)" : ""}`,
      ),
      bars,
    );
    const d = await api<{
      response: string;
      toolCalls: Array<{ name: string; status?: string }>;
      todos: Array<{ content: string; status: string }>;
      diffs: Array<{ file: string; additions?: number; deletions?: number }>;
    }>(`/v1/sessions/${encodeURIComponent(id)}/details`);
    result.replaceChildren(
      h("h2", {}, "Result"),
      h("p", { id: "response" }, d.response || "(no response yet)"),
      h("h2", {}, `Tool calls (${d.toolCalls.length})`),
      list(d.toolCalls.map((t) => `${t.name} ${t.status ?? ""}`)),
      h("h2", {}, "Todos"),
      list(d.todos.map((t) => `[${t.status}] ${t.content}`)),
      h("h2", {}, "Changed files"),
      list(
        d.diffs.map((f) => `${f.file} (+${f.additions ?? 0} -${f.deletions ?? 0})`),
        "diffs",
      ),
    );
  };

  const first = await render();
  await renderResult();
  if (!ACTIVE.has(first.status)) {
    leave.push(followLog(id, log, () => undefined));
    return;
  }
  const timer = setInterval(() => void guarded(async () => void (await render())), 2_000);
  leave.push(() => clearInterval(timer));
  leave.push(
    followLog(id, log, () => {
      clearInterval(timer);
      void guarded(async () => {
        await render();
        await renderResult();
      });
    }),
  );
}

async function fleetPage(): Promise<void> {
  const load = async (): Promise<void> => {
    const f = await api<{
      projects: Array<{ projectId: string; queued: number; starting: number; running: number }>;
      admission: { sandboxesHeld: number; learnedCap?: number; providerLimit?: number };
      pool: Array<{
        key: string;
        ready: number;
        target: number;
        starting: number;
        claimed: number;
        hits: number;
        misses: number;
      }>;
      deadLetters: Array<{ subject: string; reason: string; at: number; deliveries: number }>;
    }>("/v1/fleet");
    const table = (head: string[], rows: string[][], id: string): HTMLElement =>
      h(
        "table",
        { id },
        h("thead", {}, h("tr", {}, ...head.map((c) => h("th", {}, c)))),
        h(
          "tbody",
          {},
          ...(rows.length
            ? rows.map((r) => h("tr", {}, ...r.map((c) => h("td", {}, c))))
            : [h("tr", {}, h("td", { colspan: String(head.length), class: "muted" }, "None."))]),
        ),
      );
    show(
      h(
        "section",
        {},
        h("h1", {}, "Admission"),
        h(
          "p",
          { id: "admission" },
          `Sandboxes held fleet-wide: ${f.admission.sandboxesHeld}. Cap learned from the provider: ${f.admission.learnedCap ?? "none yet"}${f.admission.providerLimit ? ` (the provider named ${f.admission.providerLimit})` : ""}.`,
        ),
        table(
          ["project", "queued", "starting", "running"],
          f.projects.map((p) => [p.projectId, String(p.queued), String(p.starting), String(p.running)]),
          "projects",
        ),
      ),
      h(
        "section",
        {},
        h("h2", {}, "Warm pool"),
        table(
          ["key", "ready / target", "starting", "claimed", "hit ratio"],
          f.pool.map((p) => [
            p.key,
            `${p.ready} / ${p.target}`,
            String(p.starting),
            String(p.claimed),
            p.hits + p.misses ? `${Math.round((100 * p.hits) / (p.hits + p.misses))}%` : "-",
          ]),
          "pool",
        ),
      ),
      h(
        "section",
        {},
        h("h2", {}, "Dead letters"),
        table(
          ["when", "subject", "deliveries", "reason"],
          f.deadLetters.map((d) => [new Date(d.at).toISOString(), d.subject, String(d.deliveries), d.reason]),
          "dead-letters",
        ),
      ),
    );
  };
  await load();
  const timer = setInterval(() => void guarded(load), 3_000);
  leave.push(() => clearInterval(timer));
}

async function route(): Promise<void> {
  for (const stop of leave) stop();
  leave = [];
  const signout = document.getElementById("signout") as HTMLButtonElement;
  signout.hidden = !sessionStorage.getItem(KEY);
  if (!sessionStorage.getItem(KEY)) return signIn();
  const [path = "", query = ""] = location.hash.replace(/^#/, "").split("?");
  for (const a of document.querySelectorAll("nav a"))
    a.classList.toggle("current", (a.getAttribute("data-nav") === "fleet") === path.startsWith("/fleet"));
  if (path.startsWith("/session/")) return guarded(() => sessionPage(decodeURIComponent(path.slice(9))));
  if (path.startsWith("/fleet")) return guarded(fleetPage);
  return guarded(() => sessionsPage(new URLSearchParams(query)));
}

document.getElementById("signout")?.addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  void route();
});
window.addEventListener("hashchange", () => void route());
void route();
