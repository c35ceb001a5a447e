import type { Collection } from '../store/types.js';

/*
 * What the API has read from a collection, kept while the collection's
 * change stamp (Collection.stamp) stays the same: the first request that
 * finds another stamp empties every map, so an answer built from them is
 * the one the store would give now. A store with no stamp keeps nothing.
 */

/** A map that empties itself rather than grow past `max` entries (each entry weighing `weigh`). */
export class BoundedMap<V> {
  private readonly map = new Map<string, V>();
  private weight = 0;

  constructor(
    private readonly max: number,
    private readonly weigh: (v: V) => number = () => 1,
  ) {}

  get(key: string): V | undefined {
    return this.map.get(key);
  }

  set(key: string, value: V): void {
    const old = this.map.get(key);
    if (old !== undefined) this.weight -= this.weigh(old);
    if (this.weight + this.weigh(value) > this.max) this.clear();
    this.map.set(key, value);
    this.weight += this.weigh(value);
  }

  clear(): void {
    this.map.clear();
    this.weight = 0;
  }
}

export class Stamped {
  private current: string | undefined;
  private readonly maps: Array<{ clear(): void }> = [];

  constructor(private readonly collection: () => Collection<object>) {}

  /** A map emptied with the others at each change of stamp. */
  map<V>(max: number, weigh?: (v: V) => number): BoundedMap<V> {
    const m = new BoundedMap<V>(max, weigh);
    this.maps.push(m);
    return m;
  }

  /** The stamp now; read it before whatever it is to vouch for. */
  async read(): Promise<string | undefined> {
    const stamp = await this.collection().stamp();
    if (stamp === undefined || stamp !== this.current) {
      for (const m of this.maps) m.clear();
      this.current = stamp;
    }
    return stamp;
  }

  /** Whether what was read after `stamp` may be kept: no other stamp has been seen since. */
  holds(stamp: string | undefined): stamp is string {
    return stamp !== undefined && stamp === this.current;
  }
}
