/**
 * Flame graph (icicle) layout of a trace's function spans: the request span on top, each function span
 * under its nearest enclosing function (through `display_parent_span_id`), in two modes:
 * - `time`: frames at their real place on the request's time axis (a flame chart, calls in order);
 * - `merged`: siblings with the same name merged and summed (the classic flame graph, widest first),
 *   which turns an N+1 loop's thirty thin calls into one wide frame.
 * Pure functions, so the canvas component only draws and hit-tests what this computes.
 */
import type { Span } from './api';
import { frameAtPoint, framesInView, indexRows, type FrameRows, type Viewport } from './framecanvas';
import { compareText, displayParent, isFunctionSpan, startTimes } from './waterfall';

export type FlameMode = 'time' | 'merged';

export interface FlameFrame {
	/** Span id (time mode) or the call path (merged mode). */
	key: string;
	/** The span to select when the frame is clicked (the longest one for merged frames). */
	spanId: string;
	name: string;
	depth: number;
	/** Left and right edges as fractions (0..1) of the root's time range. */
	x0: number;
	x1: number;
	/** Total and self time in milliseconds (summed over merged calls). */
	totalMs: number;
	selfMs: number;
	/** Calls merged into this frame (1 in time mode). */
	calls: number;
	/** The spans merged into this frame (merged mode only). */
	members?: string[];
	library: boolean;
	isRoot: boolean;
	parent: number;
}

export interface FlameLayout extends FrameRows<FlameFrame> {
	totalMs: number;
	mode: FlameMode;
}

interface Node {
	span: Span;
	startMs: number;
	durMs: number;
	children: Node[];
}

function truthy(v: unknown): boolean {
	return v === true || v === 'true' || v === 1;
}

function selfOf(node: Node): number {
	const attr = Number(node.span.attributes?.['pystrument.self_time_ms']);
	if (Number.isFinite(attr) && attr >= 0) return attr;
	const kids = node.children.reduce((sum, c) => sum + c.durMs, 0);
	return Math.max(0, node.durMs - kids);
}

/** The span a flame graph hangs from: the given root, else the earliest span without a parent in the trace. */
function pickRoot(spans: readonly Span[], byId: Map<string, Span>, starts: Map<string, number>, rootId?: string | null): Span | null {
	if (rootId && byId.has(rootId)) return byId.get(rootId)!;
	let best: Span | null = null;
	const at = (s: Span) => starts.get(s.span_id) ?? 0;
	for (const s of spans) {
		const p = displayParent(s);
		if (p && byId.has(p)) continue;
		if (!best || at(s) < at(best) || (at(s) === at(best) && s.duration > best.duration)) best = s;
	}
	return best;
}

/** The function-span tree under the root; spans outside the root's subtree are left out. */
function buildTree(spans: readonly Span[], rootId?: string | null): Node | null {
	const byId = new Map<string, Span>();
	for (const s of spans) if (!byId.has(s.span_id)) byId.set(s.span_id, s);
	const unique = [...byId.values()];
	const starts = startTimes(unique);
	const root = pickRoot(unique, byId, starts, rootId);
	if (!root) return null;
	const nodes = new Map<string, Node>();
	const make = (s: Span): Node => ({ span: s, startMs: starts.get(s.span_id) ?? 0, durMs: Math.max(0, s.duration) * 1000, children: [] });
	const rootNode = make(root);
	nodes.set(root.span_id, rootNode);
	// The nearest ancestor that is in the flame graph (the root or a function span); bounded against cycles.
	const flameParent = (s: Span): Node | null => {
		let id = displayParent(s);
		for (let hops = 0; id && hops < 10_000; hops++) {
			const n = nodes.get(id);
			if (n) return n;
			const p = byId.get(id);
			if (!p || p === s) return null;
			id = displayParent(p);
		}
		return null;
	};
	const fns = unique.filter((s) => s !== root && isFunctionSpan(s));
	for (const s of fns) nodes.set(s.span_id, make(s));
	for (const s of fns) {
		const parent = flameParent(s);
		if (parent && parent !== nodes.get(s.span_id)) parent.children.push(nodes.get(s.span_id)!);
	}
	const order = (a: Node, b: Node) => a.startMs - b.startMs || b.durMs - a.durMs || compareText(a.span.span_id, b.span.span_id);
	const sortAll = (n: Node, depth: number) => {
		if (depth > 512) {
			n.children = [];
			return;
		}
		n.children.sort(order);
		for (const c of n.children) sortAll(c, depth + 1);
	};
	sortAll(rootNode, 0);
	return rootNode;
}

function finish(frames: FlameFrame[], totalMs: number, mode: FlameMode): FlameLayout {
	return { ...indexRows(frames), totalMs, mode };
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/** Lays the function spans out; `rootId` is the request span (the record's `span_id`) when known. */
export function layoutFlame(spans: readonly Span[], mode: FlameMode = 'time', rootId?: string | null): FlameLayout {
	const root = buildTree(spans, rootId);
	if (!root) return { frames: [], byDepth: [], maxDepth: 0, totalMs: 0, mode };
	const totalMs = root.durMs;
	const frames: FlameFrame[] = [];
	frames.push({
		library: false,
		isRoot: true,
		calls: 1,
		key: root.span.span_id,
		spanId: root.span.span_id,
		name: root.span.name,
		depth: 0,
		x0: 0,
		x1: 1,
		totalMs,
		selfMs: selfOf(root),
		parent: -1
	});
	if (mode === 'time') layoutTime(root, frames, totalMs);
	else layoutMerged(root, frames, totalMs);
	return finish(frames, totalMs, mode);
}

function layoutTime(root: Node, frames: FlameFrame[], totalMs: number): void {
	const cursor: number[] = [];
	const stack: Array<{ node: Node; index: number; depth: number }> = root.children.map((c) => ({ node: c, index: 0, depth: 1 })).reverse();
	while (stack.length) {
		const { node, index, depth } = stack.pop()!;
		const parent = frames[index]!;
		// Sampled times are approximate: a call poking out of its caller is clipped to it.
		const rawX0 = totalMs > 0 ? (node.startMs - root.startMs) / totalMs : 0;
		const rawX1 = totalMs > 0 ? rawX0 + node.durMs / totalMs : 1;
		const x0 = clamp(rawX0, cursor[index] ?? parent.x0, parent.x1);
		const x1 = clamp(rawX1, x0, parent.x1);
		cursor[index] = x1; // and a sibling overlapping the previous one starts where that one ends
		frames.push({
			key: node.span.span_id,
			spanId: node.span.span_id,
			name: node.span.name,
			depth,
			x0,
			x1,
			totalMs: node.durMs,
			selfMs: selfOf(node),
			calls: 1,
			library: truthy(node.span.attributes?.['pystrument.library']),
			isRoot: false,
			parent: index
		});
		const me = frames.length - 1;
		for (let i = node.children.length - 1; i >= 0; i--) stack.push({ node: node.children[i]!, index: me, depth: depth + 1 });
	}
}

interface Group {
	name: string;
	nodes: Node[];
	totalMs: number;
}

function groupChildren(nodes: readonly Node[]): Group[] {
	const groups = new Map<string, Group>();
	for (const parent of nodes)
		for (const child of parent.children) {
			const g = groups.get(child.span.name);
			if (g) {
				g.nodes.push(child);
				g.totalMs += child.durMs;
			} else groups.set(child.span.name, { name: child.span.name, nodes: [child], totalMs: child.durMs });
		}
	return [...groups.values()].sort((a, b) => b.totalMs - a.totalMs || compareText(a.name, b.name));
}

function layoutMerged(root: Node, frames: FlameFrame[], totalMs: number): void {
	const stack: Array<{ nodes: Node[]; index: number; depth: number }> = [{ nodes: [root], index: 0, depth: 1 }];
	while (stack.length) {
		const { nodes, index, depth } = stack.pop()!;
		const parent = frames[index]!;
		let cursor = parent.x0;
		for (const g of groupChildren(nodes)) {
			const width = totalMs > 0 ? g.totalMs / totalMs : 0;
			const x0 = Math.min(cursor, parent.x1);
			const x1 = clamp(x0 + width, x0, parent.x1);
			cursor = x1;
			const longest = g.nodes.reduce((a, b) => (b.durMs > a.durMs ? b : a));
			frames.push({
				key: `${parent.key}\u0000${g.name}`,
				spanId: longest.span.span_id,
				name: g.name,
				depth,
				x0,
				x1,
				totalMs: g.totalMs,
				selfMs: g.nodes.reduce((sum, n) => sum + selfOf(n), 0),
				calls: g.nodes.length,
				members: g.nodes.map((n) => n.span.span_id),
				library: g.nodes.every((n) => truthy(n.span.attributes?.['pystrument.library'])),
				isRoot: false,
				parent: index
			});
			stack.push({ nodes: g.nodes, index: frames.length - 1, depth: depth + 1 });
		}
	}
}

/** The visible window of the time axis, as fractions: [0, 1] unzoomed. */
export type { Viewport };

/** The frame under a point: `x` in 0..1 of the canvas width, `depth` the row. Null when nothing is there. */
export function hitTest(layout: FlameLayout, view: Viewport, x: number, depth: number): FlameFrame | null {
	return frameAtPoint(layout, view, x, depth);
}

/** The viewport that shows a frame across the whole width (zoom on double click). */
export function zoomTo(frame: FlameFrame): Viewport {
	if (frame.x1 - frame.x0 <= 1e-9) return { x0: Math.max(0, frame.x0 - 0.0005), x1: Math.min(1, frame.x0 + 0.0005) };
	return { x0: frame.x0, x1: frame.x1 };
}

/** Frames wide enough (in pixels) to be drawn in this viewport; the rest would be sub-pixel noise. */
export function visibleFrames(layout: FlameLayout, view: Viewport, widthPx: number, minPx = 0.5): FlameFrame[] {
	return framesInView(layout.frames, view, widthPx, minPx);
}

/** A stable warm colour for a function name; library frames are muted, the request root is slate. */
export function frameColor(frame: Pick<FlameFrame, 'name' | 'library' | 'isRoot'>): string {
	if (frame.isRoot) return 'hsl(215 25% 62%)';
	let h = 0;
	for (let i = 0; i < frame.name.length; i++) h = (h * 31 + frame.name.charCodeAt(i)) >>> 0;
	const hue = 8 + (h % 42); // red-orange to amber
	const light = 55 + ((h >>> 8) % 12);
	return frame.library ? `hsl(${hue} 28% ${light + 12}%)` : `hsl(${hue} 85% ${light}%)`;
}

/** Whether a frame stands for the span (its own span, or one of the calls merged into it). */
export function frameHasSpan(frame: FlameFrame, spanId: string | null | undefined): boolean {
	if (!spanId) return false;
	return frame.spanId === spanId || (frame.members?.includes(spanId) ?? false);
}
