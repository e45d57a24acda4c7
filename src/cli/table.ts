// The one table renderer of the jobwatch command: aligned plain-text columns.

/** A plain-text table: columns padded to their widest cell; `paint` colours a cell after padding. */
export function table(
  headers: string[],
  rows: string[][],
  paint: (column: number, cell: string, padded: string) => string = (_c, _cell, padded) => padded,
): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const render = (cells: string[], painter: (i: number, cell: string, padded: string) => string): string =>
    cells
      .map((cell, i) => painter(i, cell, i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [render(headers, (_i, _cell, padded) => padded), ...rows.map((r) => render(r, paint))].join("\n");
}
