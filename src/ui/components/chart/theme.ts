/** The design system's colours as literal strings, for canvas and exported SVG. */
export interface ChartColors {
  bg: string;
  text: string;
  muted: string;
  grid: string;
  series: string[];
}

export function chartColors(el: Element): ChartColors {
  const css = getComputedStyle(el);
  const v = (name: string) => css.getPropertyValue(name).trim();
  const series: string[] = [];
  for (let i = 1; i <= 8; i++) {
    const c = v(`--color-series-${i}`);
    if (c) series.push(c);
  }
  if (series.length === 0) series.push(v('--color-accent'));
  return {
    bg: v('--color-bg'),
    text: v('--color-text'),
    muted: v('--color-text-muted'),
    grid: v('--color-border'),
    series,
  };
}

export function seriesColor(colors: ChartColors, i: number): string {
  return colors.series[i % colors.series.length]!;
}
