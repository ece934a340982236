//! The settings form, drawn from the server's JSON Schema: each change is checked here, sent
//! (`pit/settings set`), checked again by the server, persisted, and applied live in every
//! window through the `settings` subscription. A refused value keeps its field's error.

import { useState } from 'react';
import type { Rpc } from './rpc';
import { checkSetting, fromInput, type Settings, type SettingsSchema } from './settings';

type Props = { rpc: Rpc; schema: SettingsSchema | null; settings: Settings; motifs: string[] };

export function SettingsView({ rpc, schema, settings, motifs }: Props) {
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [drafts, setDrafts] = useState<Record<string, string>>({});

  const set = async (field: keyof Settings, value: unknown) => {
    const problem = schema ? checkSetting(schema, field, value) : null;
    if (problem) {
      setErrors((e) => ({ ...e, [field]: problem }));
      return;
    }
    try {
      await rpc.invoke('pit/settings', 'set', { [field]: value });
      setErrors(({ [field]: _, ...rest }) => rest);
      setDrafts(({ [field]: _, ...rest }) => rest);
    } catch (e) {
      setErrors((errs) => ({ ...errs, [field]: (e as Error).message }));
    }
  };

  const number = (field: 'font_size' | 'tab_size', label: string) => (
    <label className="setting">
      <span>{label}</span>
      <input
        name={field}
        inputMode="numeric"
        value={drafts[field] ?? String(settings[field])}
        onChange={(e) => setDrafts((d) => ({ ...d, [field]: e.target.value }))}
        onBlur={(e) => void set(field, schema ? fromInput(schema, field, e.target.value) : Number(e.target.value))}
        onKeyDown={(e) => e.key === 'Enter' && (e.target as HTMLInputElement).blur()}
        aria-invalid={!!errors[field]}
      />
      {errors[field] && <em className="field-error" role="alert">{errors[field]}</em>}
    </label>
  );

  return (
    <section className="settings" aria-label="Settings">
      <header className="side-header">
        <span>Settings</span>
      </header>
      <div className="settings-form">
        <label className="setting">
          <span>Theme</span>
          <select name="theme" value={settings.theme} onChange={(e) => void set('theme', e.target.value)}>
            <option value="dark">Dark</option>
            <option value="light">Light</option>
            {motifs.map((m) => (
              <option key={m} value={`motif:${m}`}>
                Motif: {m}
              </option>
            ))}
          </select>
          {errors.theme && <em className="field-error" role="alert">{errors.theme}</em>}
        </label>
        {number('font_size', 'Font size')}
        {number('tab_size', 'Tab size')}
        <label className="setting checkbox">
          <input name="word_wrap" type="checkbox" checked={settings.word_wrap} onChange={(e) => void set('word_wrap', e.target.checked)} />
          <span>Word wrap</span>
        </label>
        <label className="setting">
          <span>Keymap</span>
          <select name="keymap" value={settings.keymap} onChange={(e) => void set('keymap', e.target.value)}>
            <option value="default">Default</option>
            <option value="vim">Vim</option>
            <option value="emacs">Emacs</option>
          </select>
          {errors.keymap && <em className="field-error" role="alert">{errors.keymap}</em>}
        </label>
        <p className="muted">Saved in settings.json in Symphony's home; every open window follows changes at once.</p>
      </div>
    </section>
  );
}
