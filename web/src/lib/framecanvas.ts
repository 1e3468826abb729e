/**
 * What the trace's flame graph (`flame.ts`) and the aggregated one (`aggflame.ts`) share: frames laid out as
 * boxes `[x0, x1]` (0..1 of the width) on rows by depth, the rows indexed left to right, hit-testing and the
 * visible subset for a viewport, and the canvas drawing of a row of boxes with labels.
 */

export interface FrameBox {
	depth: number;
	x0: number;
	x1: number;
}

export interface FrameRows<F extends FrameBox> {
	frames: F[];
	/** Per depth, the indexes of that row's frames ordered by `x0`. */
	byDepth: number[][];
	maxDepth: number;
}

/** The visible window of the x axis (0..1). */
export interface Viewport {
	x0: number;
	x1: number;
}

/** `frames` indexed by row, each row ordered left to right. */
export function indexRows<F extends FrameBox>(frames: F[]): FrameRows<F> {
	let maxDepth = 0;
	const byDepth: number[][] = [];
	frames.forEach((f, i) => {
		maxDepth = Math.max(maxDepth, f.depth);
		(byDepth[f.depth] ??= []).push(i);
	});
	for (const row of byDepth) row?.sort((a, b) => frames[a]!.x0 - frames[b]!.x0);
	return { frames, byDepth, maxDepth };
}

/** The frame under a point: `x` in 0..1 of the canvas width, `depth` the row. Null when nothing is there. */
export function frameAtPoint<F extends FrameBox>(rows: FrameRows<F>, view: Viewport, x: number, depth: number): F | null {
	const row = rows.byDepth[depth];
	if (!row || row.length === 0) return null;
	const at = view.x0 + x * (view.x1 - view.x0);
	// Last frame starting at or before `at` (frames in one row never overlap).
	let lo = 0;
	let hi = row.length - 1;
	let found = -1;
	while (lo <= hi) {
		const mid = (lo + hi) >> 1;
		if (rows.frames[row[mid]!]!.x0 <= at) {
			found = mid;
			lo = mid + 1;
		} else hi = mid - 1;
	}
	if (found < 0) return null;
	const frame = rows.frames[row[found]!]!;
	return at <= frame.x1 ? frame : null;
}

/** Frames at least `minPx` wide in this viewport; the rest would be sub-pixel noise. */
export function framesInView<F extends FrameBox>(frames: readonly F[], view: Viewport, widthPx: number, minPx = 0.5): F[] {
	const scale = widthPx / Math.max(1e-12, view.x1 - view.x0);
	return frames.filter((f) => f.x1 > view.x0 && f.x0 < view.x1 && (f.x1 - f.x0) * scale >= minPx);
}

/** The canvas sized to `w` × `h` CSS pixels at the device's pixel ratio, cleared, ready for labels. */
export function prepareCanvas(el: HTMLCanvasElement, w: number, h: number): CanvasRenderingContext2D | null {
	const dpr = window.devicePixelRatio || 1;
	el.width = Math.round(w * dpr);
	el.height = Math.round(h * dpr);
	el.style.width = `${w}px`;
	el.style.height = `${h}px`;
	const ctx = el.getContext('2d');
	if (!ctx) return null;
	ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
	ctx.clearRect(0, 0, w, h);
	ctx.font = '11px system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif';
	ctx.textBaseline = 'middle';
	return ctx;
}

/** Where a frame lands on a canvas `w` pixels wide showing `view`: its left edge and width in pixels. */
export function frameSpan(f: FrameBox, view: Viewport, w: number): { x: number; width: number } {
	const scale = w / (view.x1 - view.x0);
	const x = Math.max(0, (f.x0 - view.x0) * scale);
	const right = Math.min(w, (f.x1 - view.x0) * scale);
	return { x, width: Math.max(1, right - x) };
}

/** One frame's box: filled, lightened when hovered, labelled when wide enough. */
export function paintFrame(
	ctx: CanvasRenderingContext2D,
	box: { x: number; y: number; width: number; height: number },
	fill: string,
	label: string,
	opts: { hovered?: boolean; light?: boolean } = {}
): void {
	const { x, y, width, height } = box;
	ctx.fillStyle = fill;
	ctx.fillRect(x, y, width - (width > 3 ? 1 : 0), height - 1);
	if (opts.hovered) {
		ctx.fillStyle = 'rgb(255 255 255 / 0.35)';
		ctx.fillRect(x, y, width, height - 1);
	}
	if (width > 28) {
		ctx.fillStyle = opts.light ? '#fff' : '#1d2330';
		ctx.fillText(fitText(ctx, label, width - 8), x + 4, y + height / 2);
	}
}

/** `text` cut with an ellipsis to fit `room` pixels (empty when not even two characters fit). */
export function fitText(ctx: CanvasRenderingContext2D, text: string, room: number): string {
	const full = ctx.measureText(text).width;
	if (full <= room) return text;
	const chars = Math.floor((room / full) * text.length) - 1;
	return chars <= 1 ? '' : `${text.slice(0, chars)}…`;
}

/** The pointer's position on a canvas as 0..1 of its width and the row (`rowHeight` pixels each) it is on. */
export function pointerRow(canvas: HTMLCanvasElement, event: MouseEvent, rowHeight: number): { x: number; row: number } {
	const rect = canvas.getBoundingClientRect();
	return { x: (event.clientX - rect.left) / rect.width, row: Math.floor((event.clientY - rect.top) / rowHeight) };
}
