// Times as the page shows and edits them: UTC minutes, as the API counts.
export const toInput = (ms: number): string => new Date(ms - (ms % 60_000)).toISOString().slice(0, 16);
export const fromInput = (value: string): string => `${value}:00Z`;
export const minuteLabel = (iso: string): string => iso.slice(11, 16);
