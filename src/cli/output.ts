/** Plain-text output of the admin CLI: aligned tables and field lists. */

/** One column of a table, or one line of a field list. */
export interface TableColumn<T> {
  header: string;
  value: (item: T) => unknown;
}

/** Renders a cell: `-` for null and undefined, `yes`/`no` for booleans, text otherwise. */
export function formatCell(value: unknown): string {
  if (value === null || value === undefined || value === "") return "-";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "string") return value.replace(/\s+/g, " ");
  if (typeof value === "number") return String(value);
  return JSON.stringify(value);
}

/** Renders items as a table with a header row; columns are separated by two spaces. */
export function formatTable<T>(columns: readonly TableColumn<T>[], items: readonly T[]): string {
  const rows = items.map((item) => columns.map((column) => formatCell(column.value(item))));
  const widths = columns.map((column, index) =>
    Math.max(column.header.length, ...rows.map((row) => (row[index] ?? "").length)),
  );
  const render = (cells: readonly string[]) =>
    cells
      .map((cell, index) => (index === cells.length - 1 ? cell : cell.padEnd(widths[index] ?? 0)))
      .join("  ");
  return [render(columns.map((column) => column.header)), ...rows.map(render)].join("\n");
}

/** Renders one item as `LABEL  value` lines. */
export function formatRecord<T>(fields: readonly TableColumn<T>[], item: T): string {
  const width = Math.max(...fields.map((field) => field.header.length));
  return fields
    .map((field) => `${field.header.padEnd(width)}  ${formatCell(field.value(item))}`)
    .join("\n");
}
