import type { B1Row, B2Row } from "./scenarios.js";

/**
 * One SVG with two panels: B1 throughput by instances per stage (fleet and peer), and B2 latency
 * (end to end p50 and p99, fleet and peer) against the offered load.
 */
export function plotSvg(b1: readonly B1Row[], b2: readonly B2Row[], caption: string): string {
  const W = 900;
  const H = 380;
  const panel = { w: 380, h: 260, top: 60 };
  const out: string[] = [];
  const text = (x: number, y: number, s: string, extra = "") =>
    out.push(`<text x="${x}" y="${y}" ${extra}>${escapeXml(s)}</text>`);
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  text(20, 24, caption, 'font-size="13"');

  // Left: B1 bars.
  const lx = 60;
  const maxRate = Math.max(1, ...b1.flatMap((r) => [r.sessionsPerSecond, r.peerSessionsPerSecond ?? 0]));
  axes(out, lx, panel.top, panel.w, panel.h, `B1 sessions/s at saturation`, "instances per stage", maxRate);
  const groupW = panel.w / Math.max(1, b1.length);
  b1.forEach((r, i) => {
    const x0 = lx + i * groupW + groupW * 0.2;
    const bw = groupW * 0.28;
    const bar = (x: number, v: number, fill: string) => {
      const h = (v / maxRate) * panel.h;
      out.push(`<rect x="${x}" y="${panel.top + panel.h - h}" width="${bw}" height="${h}" fill="${fill}"/>`);
      text(x, panel.top + panel.h - h - 4, v.toFixed(0));
    };
    bar(x0, r.sessionsPerSecond, "#2b6cb0");
    if (r.peerSessionsPerSecond !== undefined) bar(x0 + bw + 4, r.peerSessionsPerSecond, "#c05621");
    text(x0 + bw / 2, panel.top + panel.h + 16, String(r.instances));
  });
  legend(out, lx + 10, panel.top + 14, [
    ["fleet", "#2b6cb0"],
    ["BullMQ peer", "#c05621"],
  ]);

  // Right: B2 latency against load.
  const rx = 520;
  const maxLat = Math.max(
    1,
    ...b2.flatMap((r) => [r.endToEndMinusSimulated.p99, r.peer?.endToEndMinusSimulated?.p99 ?? 0]),
  );
  const maxLoad = Math.max(1, ...b2.map((r) => r.offeredPerSecond));
  axes(out, rx, panel.top, panel.w, panel.h, "B2 end to end (ms) against offered load", "sessions/s offered", maxLat);
  const series = (pick: (r: B2Row) => number | undefined, color: string, dash: string) => {
    const pts = b2.flatMap((r) => {
      const v = pick(r);
      return v === undefined || !Number.isFinite(v)
        ? []
        : [[rx + (r.offeredPerSecond / maxLoad) * panel.w, panel.top + panel.h - (v / maxLat) * panel.h] as const];
    });
    if (pts.length === 0) return;
    out.push(
      `<polyline fill="none" stroke="${color}" stroke-width="2" ${dash ? `stroke-dasharray="${dash}"` : ""} points="${pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ")}"/>`,
    );
    for (const [x, y] of pts) out.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3" fill="${color}"/>`);
  };
  series((r) => r.endToEndMinusSimulated.p50, "#2b6cb0", "");
  series((r) => r.endToEndMinusSimulated.p99, "#2b6cb0", "6 4");
  series((r) => r.peer?.endToEndMinusSimulated?.p50, "#c05621", "");
  series((r) => r.peer?.endToEndMinusSimulated?.p99, "#c05621", "6 4");
  for (const r of b2)
    text(rx + (r.offeredPerSecond / maxLoad) * panel.w - 8, panel.top + panel.h + 16, r.offeredPerSecond.toFixed(0));
  legend(out, rx + 10, panel.top + 14, [
    ["fleet p50", "#2b6cb0"],
    ["fleet p99 (dashed)", "#2b6cb0"],
    ["peer p50", "#c05621"],
    ["peer p99 (dashed)", "#c05621"],
  ]);
  out.push("</svg>");
  return out.join("\n");
}

function axes(
  out: string[],
  x: number,
  y: number,
  w: number,
  h: number,
  title: string,
  xLabel: string,
  yMax: number,
): void {
  out.push(`<text x="${x}" y="${y - 12}" font-weight="bold">${escapeXml(title)}</text>`);
  out.push(`<line x1="${x}" y1="${y + h}" x2="${x + w}" y2="${y + h}" stroke="#333"/>`);
  out.push(`<line x1="${x}" y1="${y}" x2="${x}" y2="${y + h}" stroke="#333"/>`);
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    const yy = y + h - (h * i) / 4;
    out.push(`<line x1="${x - 4}" y1="${yy}" x2="${x + w}" y2="${yy}" stroke="#ddd"/>`);
    out.push(`<text x="${x - 6}" y="${yy + 4}" text-anchor="end">${v >= 100 ? v.toFixed(0) : v.toFixed(1)}</text>`);
  }
  out.push(`<text x="${x + w / 2}" y="${y + h + 34}" text-anchor="middle">${escapeXml(xLabel)}</text>`);
}

function legend(out: string[], x: number, y: number, items: Array<[string, string]>): void {
  items.forEach(([label, color], i) => {
    out.push(`<rect x="${x}" y="${y + i * 16 - 9}" width="10" height="10" fill="${color}"/>`);
    out.push(`<text x="${x + 14}" y="${y + i * 16}">${escapeXml(label)}</text>`);
  });
}

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
