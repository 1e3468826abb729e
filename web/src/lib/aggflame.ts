/**
 * Aggregated flame graphs: the server's merged call tree (`/performance/flame`, sent by columns) laid out as
 * frames, as a flame graph (root at the bottom) or an icicle (root on top); and the differential of two trees
 * (A and B, merged by call path, per request) for the compare view. Pure functions; the canvas only draws.
 */
import type { components } from './api/schema';
import { frameAtPoint, framesInView, indexRows, type FrameRows } from './framecanvas';

export type FlameTree = components['schemas']['FlameTree'];
export type FunctionView = components['schemas']['FunctionView'];

export interface AggFrame {
	/** The call path, `a;b;c` (the root is ''). */
	key: string;
	name: string;
	file: string;
	depth: number;
	/** Left and right edges as fractions (0..1) of the root's width. */
	x0: number;
	x1: number;
	/** Seconds summed over every call on this path (in a differential: B's, per request). */
	total: number;
	self: number;
	calls: number;
	requests: number;
	library: boolean;
	isRoot: boolean;
	parent: number;
	/** Differential only: A's and B's time per request (seconds) and B - A. */
	a?: number;
	b?: number;
	delta?: number;
}

export interface AggLayout extends FrameRows<AggFrame> {
	/** The root's total (seconds); a differential: the larger of A's and B's time per request. */
	total: number;
	diff: boolean;
}

interface Node {
	key: string;
	name: string;
	file: string;
	library: boolean;
	total: number;
	self: number;
	calls: number;
	requests: number;
	a: number;
	b: number;
	children: Node[];
}

/** The tree of a `FlameTree` answer: nodes with their children, widest first (the server's order). */
export function treeOf(data: FlameTree): Node {
	const n = data.nodes;
	const nodes: Node[] = [];
	for (let i = 0; i < n.parent.length; i++) {
		const f = n.function[i]! >= 0 ? data.functions[n.function[i]!] : undefined;
		const parent = n.parent[i]!;
		const name = f?.name ?? 'all requests';
		const node: Node = {
			key: parent < 0 ? '' : nodes[parent]!.key ? `${nodes[parent]!.key};${name}` : name,
			name,
			file: f?.file ?? '',
			library: f?.library ?? false,
			total: n.total[i]!,
			self: n.self_time[i]!,
			calls: n.calls[i]!,
			requests: n.requests[i]!,
			a: 0,
			b: 0,
			children: []
		};
		nodes.push(node);
		if (parent >= 0) nodes[parent]!.children.push(node);
	}
	return nodes[0] ?? { key: '', name: 'all requests', file: '', library: false, total: 0, self: 0, calls: 0, requests: 0, a: 0, b: 0, children: [] };
}

function finish(frames: AggFrame[], total: number, diff: boolean): AggLayout {
	return { ...indexRows(frames), total, diff };
}

/** Frames of a tree: each child placed left to right inside its parent, width = its share of the root. */
function layoutTree(root: Node, total: number, width: (n: Node) => number, diff: boolean): AggLayout {
	const frames: AggFrame[] = [];
	const stack: Array<{ node: Node; depth: number; x0: number; x1: number; parent: number }> = [
		{ node: root, depth: 0, x0: 0, x1: 1, parent: -1 }
	];
	while (stack.length) {
		const { node, depth, x0, x1, parent } = stack.pop()!;
		frames.push({
			key: node.key,
			name: node.name,
			file: node.file,
			depth,
			x0,
			x1,
			total: diff ? node.b : node.total,
			self: node.self,
			calls: node.calls,
			requests: node.requests,
			library: node.library,
			isRoot: depth === 0,
			parent,
			...(diff ? { a: node.a, b: node.b, delta: node.b - node.a } : {})
		});
		const me = frames.length - 1;
		let cursor = x0;
		const placed: Array<{ node: Node; depth: number; x0: number; x1: number; parent: number }> = [];
		for (const child of node.children) {
			const w = total > 0 ? width(child) / total : 0;
			const cx0 = Math.min(cursor, x1);
			const cx1 = Math.min(x1, cx0 + w);
			cursor = cx1;
			if (cx1 - cx0 > 1e-9) placed.push({ node: child, depth: depth + 1, x0: cx0, x1: cx1, parent: me });
		}
		for (let i = placed.length - 1; i >= 0; i--) stack.push(placed[i]!);
	}
	return finish(frames, total, diff);
}

/** The layout of one aggregated tree. */
export function layoutAggregate(data: FlameTree): AggLayout {
	const root = treeOf(data);
	return layoutTree(root, root.total, (n) => n.total, false);
}

/**
 * The differential of A and B: both trees merged by call path, each side's time divided by its number of
 * profiled requests (so two ranges with different traffic compare per request). Width is the larger of the
 * two (a path that vanished in B stays visible); `delta` = B - A colours it.
 */
export function layoutDifferential(a: FlameTree, b: FlameTree): AggLayout {
	const ra = treeOf(a);
	const rb = treeOf(b);
	const na = Math.max(1, a.profiled);
	const nb = Math.max(1, b.profiled);
	const merged = (x: Node | undefined, y: Node | undefined): Node => {
		const base = (y ?? x)!;
		const node: Node = {
			...base,
			total: 0,
			self: (y?.self ?? 0) / nb,
			calls: y?.calls ?? 0,
			requests: y?.requests ?? 0,
			a: (x?.total ?? 0) / na,
			b: (y?.total ?? 0) / nb,
			children: []
		};
		const names = new Map<string, [Node | undefined, Node | undefined]>();
		for (const c of x?.children ?? []) names.set(c.name, [c, undefined]);
		for (const c of y?.children ?? []) names.set(c.name, [names.get(c.name)?.[0], c]);
		node.children = [...names.values()].map(([cx, cy]) => merged(cx, cy));
		node.children.sort((p, q) => Math.max(q.a, q.b) - Math.max(p.a, p.b) || (p.name < q.name ? -1 : 1));
		node.total = Math.max(node.a, node.b);
		return node;
	};
	const root = merged(ra, rb);
	return layoutTree(root, root.total, (n) => Math.max(n.a, n.b), true);
}

/** The visible window of the x axis, and the depth the zoomed frame sits at (rows above it are context). */
export interface AggView {
	x0: number;
	x1: number;
	depth: number;
	key: string;
}

export const FULL_VIEW: AggView = { x0: 0, x1: 1, depth: 0, key: '' };

/** The frame at a point: `x` 0..1 across the canvas, `depth` the frame depth. */
export function hitAgg(layout: AggLayout, view: AggView, x: number, depth: number): AggFrame | null {
	return frameAtPoint(layout, view, x, depth);
}

/** Frames at least `minPx` wide in this view. */
export function visibleAgg(layout: AggLayout, view: AggView, widthPx: number, minPx = 0.5): AggFrame[] {
	return framesInView(layout.frames, view, widthPx, minPx);
}

/** The view zoomed on a frame (its ancestors stay drawn full width above/below as context). */
export function zoomAgg(frame: AggFrame): AggView {
	if (frame.isRoot) return FULL_VIEW;
	return { x0: frame.x0, x1: Math.max(frame.x1, frame.x0 + 1e-9), depth: frame.depth, key: frame.key };
}

/** Frames whose function name contains `query` (case-insensitive), and the share of the root they cover. */
export function searchAgg(layout: AggLayout, query: string): { keys: Set<string>; share: number } {
	const q = query.trim().toLowerCase();
	const keys = new Set<string>();
	if (!q) return { keys, share: 0 };
	let covered = 0;
	const inside = new Set<number>();
	layout.frames.forEach((f, i) => {
		if (f.isRoot || !f.name.toLowerCase().includes(q)) return;
		keys.add(f.key);
		// Count a matching frame once, not again under a matching ancestor.
		let p = f.parent;
		while (p >= 0 && !inside.has(p)) p = layout.frames[p]!.parent;
		if (p < 0) covered += f.x1 - f.x0;
		inside.add(i);
	});
	return { keys, share: covered };
}

/** A warm colour per function (library code muted), the root slate; search matches magenta. */
export function aggColor(frame: AggFrame, matched: boolean): string {
	if (matched) return 'hsl(300 70% 62%)';
	if (frame.isRoot) return 'hsl(215 25% 62%)';
	let h = 0;
	for (let i = 0; i < frame.name.length; i++) h = (h * 31 + frame.name.charCodeAt(i)) >>> 0;
	const hue = 8 + (h % 42);
	const light = 55 + ((h >>> 8) % 12);
	return frame.library ? `hsl(${hue} 28% ${light + 12}%)` : `hsl(${hue} 85% ${light}%)`;
}

/** Differential colour: red where B takes more time per request than A, blue where less, grey when equal. */
export function diffColor(frame: AggFrame, matched: boolean): string {
	if (matched) return 'hsl(300 70% 62%)';
	const a = frame.a ?? 0;
	const b = frame.b ?? 0;
	const base = Math.max(a, b);
	const rel = base > 0 ? (b - a) / base : 0; // -1..1
	const strength = Math.min(1, Math.abs(rel));
	if (strength < 0.05) return 'hsl(220 8% 78%)';
	const light = 85 - 35 * strength;
	return rel > 0 ? `hsl(0 80% ${light}%)` : `hsl(215 80% ${light}%)`;
}

/** Rows for the table under a graph: per function (all paths summed), by self time. */
export interface FunctionRow {
	name: string;
	file: string;
	total: number;
	self: number;
	calls: number;
	a?: number;
	b?: number;
	delta?: number;
}

export function functionRows(layout: AggLayout): FunctionRow[] {
	const rows = new Map<string, FunctionRow>();
	const counted = new Map<string, Set<number>>();
	layout.frames.forEach((f, i) => {
		if (f.isRoot) return;
		let row = rows.get(f.name);
		if (!row) {
			row = { name: f.name, file: f.file, total: 0, self: 0, calls: 0, ...(layout.diff ? { a: 0, b: 0, delta: 0 } : {}) };
			rows.set(f.name, row);
			counted.set(f.name, new Set());
		}
		row.self += f.self;
		row.calls += f.calls;
		// Total time counts outermost frames only (a recursive call is inside its caller's time).
		let p = f.parent;
		let nested = false;
		while (p >= 0) {
			if (layout.frames[p]!.name === f.name) {
				nested = true;
				break;
			}
			p = layout.frames[p]!.parent;
		}
		if (!nested) {
			row.total += f.total;
			if (layout.diff) {
				row.a! += f.a ?? 0;
				row.b! += f.b ?? 0;
				row.delta = row.b! - row.a!;
			}
		}
		counted.get(f.name)!.add(i);
	});
	const list = [...rows.values()];
	if (layout.diff) list.sort((x, y) => Math.abs(y.delta ?? 0) - Math.abs(x.delta ?? 0) || (x.name < y.name ? -1 : 1));
	else list.sort((x, y) => y.self - x.self || y.total - x.total || (x.name < y.name ? -1 : 1));
	return list;
}
