/** A chart as a PNG: its canvas, or its SVG drawn onto a canvas. */

function canvasToPng(canvas: HTMLCanvasElement): Promise<Blob> {
  return new Promise((ok, fail) =>
    canvas.toBlob(
      (b) => (b ? ok(b) : fail(new Error('The browser could not encode the PNG.'))),
      'image/png',
    ),
  );
}

/** The chart canvas on the page background (uPlot's canvas is transparent). */
export async function canvasPng(source: HTMLCanvasElement, background: string): Promise<Blob> {
  const c = document.createElement('canvas');
  c.width = source.width;
  c.height = source.height;
  const ctx = c.getContext('2d');
  if (!ctx) throw new Error('No 2D canvas in this browser.');
  ctx.fillStyle = background;
  ctx.fillRect(0, 0, c.width, c.height);
  ctx.drawImage(source, 0, 0);
  return canvasToPng(c);
}

/** An SVG element as a PNG at the device pixel ratio. Colours must be literal attributes. */
export async function svgPng(svg: SVGSVGElement, background: string): Promise<Blob> {
  const { width, height } = svg.getBoundingClientRect();
  const clone = svg.cloneNode(true) as SVGSVGElement;
  clone.setAttribute('xmlns', 'http://www.w3.org/2000/svg');
  clone.setAttribute('width', String(width));
  clone.setAttribute('height', String(height));
  const xml = new XMLSerializer().serializeToString(clone);
  const url = URL.createObjectURL(new Blob([xml], { type: 'image/svg+xml' }));
  try {
    const img = new Image();
    img.src = url;
    await img.decode();
    const ratio = window.devicePixelRatio || 1;
    const c = document.createElement('canvas');
    c.width = Math.round(width * ratio);
    c.height = Math.round(height * ratio);
    const ctx = c.getContext('2d');
    if (!ctx) throw new Error('No 2D canvas in this browser.');
    ctx.fillStyle = background;
    ctx.fillRect(0, 0, c.width, c.height);
    ctx.drawImage(img, 0, 0, c.width, c.height);
    return await canvasToPng(c);
  } finally {
    URL.revokeObjectURL(url);
  }
}
