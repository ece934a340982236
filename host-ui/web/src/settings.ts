//! The settings as the UI edits them: their shape, and checking a value against the JSON
//! Schema the server publishes (`pit/settings schema`) so a bad value is refused before it is
//! sent — the server checks again and its answer is the final word.

export type Settings = { theme: string; font_size: number; tab_size: number; word_wrap: boolean; keymap: string };

export const defaultSettings: Settings = { theme: 'dark', font_size: 14, tab_size: 4, word_wrap: false, keymap: 'default' };

type FieldSchema = { type?: string; minimum?: number; maximum?: number; enum?: unknown[]; pattern?: string };
export type SettingsSchema = { properties: Record<string, FieldSchema> };

/** Why `value` is not a valid `field`, naming the field; `null` when it is. */
export function checkSetting(schema: SettingsSchema, field: string, value: unknown): string | null {
  const f = schema.properties[field];
  if (!f) return `settings.${field}: no such setting`;
  if (f.enum && !f.enum.includes(value)) return `settings.${field}: expected one of ${f.enum.map((v) => JSON.stringify(v)).join(', ')}`;
  switch (f.type) {
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value)) return `settings.${field}: expected a whole number`;
      if ((f.minimum !== undefined && value < f.minimum) || (f.maximum !== undefined && value > f.maximum))
        return `settings.${field}: expected a whole number from ${f.minimum} to ${f.maximum}`;
      break;
    case 'boolean':
      if (typeof value !== 'boolean') return `settings.${field}: expected true or false`;
      break;
    case 'string':
      if (typeof value !== 'string') return `settings.${field}: expected text`;
      if (f.pattern && !new RegExp(f.pattern).test(value)) return `settings.${field}: ${JSON.stringify(value)} does not match ${f.pattern}`;
      break;
  }
  return null;
}

/** What a form input's text means for a field (numbers parsed; text that is no number stays text so the check names it). */
export function fromInput(schema: SettingsSchema, field: string, text: string): unknown {
  const type = schema.properties[field]?.type;
  if (type === 'integer') return text.trim() !== '' && !Number.isNaN(Number(text)) ? Number(text) : text;
  return text;
}
