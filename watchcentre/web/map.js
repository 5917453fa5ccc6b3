// A world choropleth in SVG from world-atlas's countries-110m.json (TopoJSON, Natural Earth), shipped
// with the page. TopoJSON arcs are decoded here and projected with the Equal Earth projection.
import { svg } from "./dom.js";

let cache = null;

export async function loadWorld() {
  if (!cache) {
    const [topo, codes] = await Promise.all([
      fetch("/console/countries-110m.json").then((r) => r.json()),
      fetch("/console/countries.json").then((r) => r.json()),
    ]);
    cache = { shapes: decode(topo), codes };
  }
  return cache;
}

function decode(topo) {
  const [sx, sy] = topo.transform.scale, [tx, ty] = topo.transform.translate;
  const arcs = topo.arcs.map((arc) => {
    let x = 0, y = 0;
    return arc.map(([dx, dy]) => { x += dx; y += dy; return [x * sx + tx, y * sy + ty]; });
  });
  const ring = (ids) => {
    const pts = [];
    for (const i of ids) {
      const a = i < 0 ? arcs[~i].slice().reverse() : arcs[i];
      pts.push(...(pts.length ? a.slice(1) : a));
    }
    // A ring cut at the antimeridian (Russia, Fiji) jumps from +180 to -180: keep it in one piece
    // on the east side (the part past 180° falls outside the map) instead of a line across the world.
    if (pts.some((p, k) => k && Math.abs(p[0] - pts[k - 1][0]) > 180)) return pts.map(([x, y]) => [x < 0 ? x + 360 : x, y]);
    return pts;
  };
  return topo.objects.countries.geometries.map((g) => {
    const polys = g.type === "Polygon" ? [g.arcs] : g.type === "MultiPolygon" ? g.arcs : [];
    return { id: g.id, name: g.properties && g.properties.name, rings: polys.flatMap((p) => p.map(ring)) };
  });
}

// Equal Earth (Šavrič, Patterson, Jenny 2018).
const A1 = 1.340264, A2 = -0.081106, A3 = 0.000893, A4 = 0.003796, M = Math.sqrt(3) / 2;
function project([lon, lat]) {
  const l = (lon * Math.PI) / 180, p = (lat * Math.PI) / 180;
  const t = Math.asin(M * Math.sin(p)), t2 = t * t, t6 = t2 * t2 * t2;
  const x = (l * Math.cos(t)) / (M * (A1 + 3 * A2 * t2 + t6 * (7 * A3 + 9 * A4 * t2)));
  const y = t * (A1 + A2 * t2 + t6 * (A3 + A4 * t2));
  return [x, y];
}

const SCALE = 150, W = 2 * 2.7066 * SCALE, H = 2 * 1.3173 * SCALE;
const PALETTE = ["#243442", "#1e4d6b", "#1f6f8b", "#2a9d8f", "#8ab17d", "#e9c46a", "#f4a261", "#e76f51"];

export function colour(n, max) {
  if (!n) return PALETTE[0];
  const k = Math.min(PALETTE.length - 1, 1 + Math.floor((Math.log(n) / Math.log(Math.max(2, max) + 1)) * (PALETTE.length - 1)));
  return PALETTE[k];
}

export function drawMap(world, counts, label) {
  const max = Math.max(0, ...Object.values(counts));
  const top = H / 2 - project([0, 84])[1] * SCALE, bottom = H / 2 - project([0, -57])[1] * SCALE; // Greenland to Cape Horn
  const root = svg("svg", { class: "map", viewBox: `0 ${top.toFixed(0)} ${W.toFixed(0)} ${(bottom - top).toFixed(0)}`, role: "img", "aria-label": label });
  for (const shape of world.shapes) {
    if (shape.id === "010") continue; // Antarctica: no post there, and it eats a third of the height
    const entry = world.codes[shape.id];
    const code = entry ? entry[0] : null;
    const name = entry ? entry[1] : shape.name || "";
    const n = (code && counts[code]) || 0;
    const d = shape.rings
      .map((r) => "M" + r.map((pt) => { const [x, y] = project(pt); return `${(W / 2 + x * SCALE).toFixed(1)},${(H / 2 - y * SCALE).toFixed(1)}`; }).join("L") + "Z")
      .join("");
    const path = svg("path", { d, fill: colour(n, max), "data-country": code || "" }, svg("title", {}, `${name}${code ? " (" + code + ")" : ""}: ${n}`));
    root.append(path);
  }
  return root;
}

export function legend(max) {
  // colour(n) >= k exactly when n >= (M + 1) ^ ((k - 1) / (P - 1)): the smallest count in each colour used
  const M = Math.max(2, max), P = PALETTE.length, out = [{ colour: PALETTE[0], from: 0 }];
  for (let k = 1; k < P; k++) {
    const from = Math.max(1, Math.ceil(Math.pow(M + 1, (k - 1) / (P - 1)) - 1e-9));
    if (from > Math.max(1, max) || out.some((o) => o.from === from)) continue;
    out.push({ colour: colour(from, max), from });
  }
  return out;
}
