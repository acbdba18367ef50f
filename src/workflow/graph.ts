/**
 * Dependency graphs over nodes 0..n-1, where `deps[i]` lists the nodes node i depends on (they
 * come first). Every walk is iterative, so a 100,000-node chain needs no deeper stack than a
 * single node.
 */

/** Node i's dependents (the reverse of `deps`). */
export function dependentsOf(deps: readonly (readonly number[])[]): number[][] {
  const dependents: number[][] = Array.from({ length: deps.length }, () => []);
  for (let i = 0; i < deps.length; i++) for (const d of deps[i]!) dependents[d]!.push(i);
  return dependents;
}

/**
 * A topological order (dependencies first; among ready nodes, lower index first), or null
 * when the graph has a cycle.
 */
export function topologicalOrder(deps: readonly (readonly number[])[], dependents: readonly (readonly number[])[]): number[] | null {
  const n = deps.length;
  const waiting = new Int32Array(n);
  const order: number[] = [];
  for (let i = 0; i < n; i++) {
    waiting[i] = deps[i]!.length;
    if (waiting[i] === 0) order.push(i);
  }
  for (let head = 0; head < order.length; head++) {
    for (const next of dependents[order[head]!]!) if (--waiting[next]! === 0) order.push(next);
  }
  return order.length === n ? order : null;
}

/**
 * Strongly connected components (Tarjan, with an explicit stack), each listed once. A component
 * comes after every component it depends on (the graph of components, condensed, in
 * topological order).
 */
export function stronglyConnectedComponents(deps: readonly (readonly number[])[]): number[][] {
  const n = deps.length;
  const index = new Int32Array(n).fill(-1);
  const low = new Int32Array(n);
  const onStack = new Uint8Array(n);
  const stack: number[] = [];
  const components: number[][] = [];
  // The DFS path: node and the position of the next dependency to visit.
  const path: number[] = [];
  const cursor: number[] = [];
  let counter = 0;
  for (let root = 0; root < n; root++) {
    if (index[root] !== -1) continue;
    path.push(root);
    cursor.push(0);
    index[root] = low[root] = counter++;
    stack.push(root);
    onStack[root] = 1;
    while (path.length > 0) {
      const top = path.length - 1;
      const v = path[top]!;
      const edges = deps[v]!;
      if (cursor[top]! < edges.length) {
        const w = edges[cursor[top]!++]!;
        if (index[w] === -1) {
          index[w] = low[w] = counter++;
          stack.push(w);
          onStack[w] = 1;
          path.push(w);
          cursor.push(0);
        } else if (onStack[w] === 1 && index[w]! < low[v]!) {
          low[v] = index[w]!;
        }
        continue;
      }
      path.pop();
      cursor.pop();
      if (path.length > 0) {
        const parent = path[path.length - 1]!;
        if (low[v]! < low[parent]!) low[parent] = low[v]!;
      }
      if (low[v] === index[v]) {
        const component: number[] = [];
        let w: number;
        do {
          w = stack.pop()!;
          onStack[w] = 0;
          component.push(w);
        } while (w !== v);
        components.push(component);
      }
    }
  }
  return components;
}

/** True when the component is a cycle: several nodes, or one that depends on itself. */
export function isCycle(component: readonly number[], deps: readonly (readonly number[])[]): boolean {
  return component.length > 1 || deps[component[0]!]!.includes(component[0]!);
}

/**
 * One cycle through the component's lowest node, as a path in dependency order (each node
 * depends on the next, the last on the first): the shortest such cycle, found breadth-first.
 */
export function cycleThrough(component: readonly number[], deps: readonly (readonly number[])[]): number[] {
  const members = new Set(component);
  let start = component[0]!;
  for (const node of component) if (node < start) start = node;
  const parent = new Map<number, number>();
  const queue = [start];
  for (let head = 0; head < queue.length; head++) {
    const v = queue[head]!;
    for (const w of deps[v]!) {
      if (!members.has(w)) continue;
      if (w === start) {
        const path = [v];
        for (let at = v; at !== start; ) {
          at = parent.get(at)!;
          path.push(at);
        }
        return path.reverse();
      }
      if (!parent.has(w)) {
        parent.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start];
}

/**
 * Waves: wave 0 holds the nodes with no dependencies, and every other node is in the wave after
 * the last of its dependencies; the members of one cycle share a wave. `components` must come
 * from `stronglyConnectedComponents(deps)`. Returns each node's wave and the number of waves.
 */
export function wavesOf(deps: readonly (readonly number[])[], components: readonly (readonly number[])[]): { wave: Int32Array; count: number } {
  const n = deps.length;
  const componentOf = new Int32Array(n);
  components.forEach((component, c) => {
    for (const node of component) componentOf[node] = c;
  });
  const wave = new Int32Array(n);
  let count = 0;
  // Components come after the components they depend on: one pass in that order.
  for (let c = 0; c < components.length; c++) {
    let level = 0;
    for (const node of components[c]!) {
      for (const d of deps[node]!) if (componentOf[d] !== c && wave[d]! + 1 > level) level = wave[d]! + 1;
    }
    for (const node of components[c]!) wave[node] = level;
    if (level + 1 > count) count = level + 1;
  }
  return { wave, count };
}
