//! A tiny event fan-out: views listen for what the App's subscriptions deliver.

export class Listeners<T> {
  private set = new Set<(value: T) => void>();

  /** Adds a listener; returns the function that removes it. */
  listen = (listener: (value: T) => void): (() => void) => {
    this.set.add(listener);
    return () => this.set.delete(listener);
  };

  emit(value: T): void {
    for (const l of [...this.set]) l(value);
  }
}
