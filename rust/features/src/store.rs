//! The embedded store of one model's views: the current `Snapshot` (one table per embedded view)
//! behind an `ArcSwap`, so a reload swaps it atomically while executors gather. Each batch
//! calls `load()` once and gathers every row from that one snapshot; a snapshot being read
//! stays alive (its `Arc`) until the last batch holding it is done, and is freed then.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::TableError;
use crate::layout::{ViewLayout, names};
use crate::table::FeatureTable;

/// The tables of a model's views at one moment; what one batch gathers from.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// One per view of the plan, in its order; `None` until the view's first load (and always
    /// for views fetched elsewhere, such as Redis).
    tables: Vec<Option<Arc<FeatureTable>>>,
    /// How many installs made this snapshot (0: nothing loaded yet).
    generation: u64,
}

impl Snapshot {
    /// View `view`'s table (by position in the plan), if loaded.
    pub fn table(&self, view: usize) -> Option<&FeatureTable> {
        self.tables.get(view)?.as_deref()
    }

    /// How many installs made this snapshot; grows by one per install.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Every view's table, in plan order.
    pub fn tables(&self) -> impl Iterator<Item = Option<&FeatureTable>> {
        self.tables.iter().map(Option::as_deref)
    }
}

/// The hot-reloadable embedded store of one model's views; see the module doc.
#[derive(Debug)]
pub struct FeatureStore {
    /// The views' layouts, in plan order: what installed tables must match.
    layouts: Vec<ViewLayout>,
    /// The snapshot batches read.
    current: ArcSwap<Snapshot>,
}

impl FeatureStore {
    /// An empty store for views of `layouts` (`JoinPlan::view_layouts`), nothing loaded.
    pub fn new(layouts: &[ViewLayout]) -> Self {
        FeatureStore {
            layouts: layouts.to_vec(),
            current: ArcSwap::from_pointee(Snapshot {
                tables: vec![None; layouts.len()],
                generation: 0,
            }),
        }
    }

    /// The current snapshot: take it once per batch (or request) and gather everything from it.
    #[inline]
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replaces the tables of their views in one atomic swap: a batch sees all of them or none.
    /// Returns the new snapshot's generation. The tables must come from builders of this
    /// store's layouts (else nothing is replaced).
    pub fn install(&self, tables: Vec<FeatureTable>) -> Result<u64, TableError> {
        let mut placed = Vec::with_capacity(tables.len());
        for table in tables {
            let view = table.layout().view();
            let Some(position) = self.layouts.iter().position(|layout| layout.view() == view)
            else {
                return Err(TableError::UnknownView {
                    view: view.to_owned(),
                    views: names(self.layouts.iter().map(ViewLayout::view)),
                });
            };
            let layout = &self.layouts[position];
            if !layout.stores_like(table.layout()) {
                return Err(TableError::LayoutMismatch {
                    view: view.to_owned(),
                });
            }
            if layout.max_age_us().is_some() && !table.has_event_times() {
                return Err(TableError::MissingEventTimes {
                    view: view.to_owned(),
                });
            }
            placed.push((position, Arc::new(table)));
        }
        // rcu: installs racing each other both land (the closure reruns on a lost race).
        let previous = self.current.rcu(|current| {
            let mut next = Snapshot::clone(current);
            for (position, table) in &placed {
                next.tables[*position] = Some(Arc::clone(table));
            }
            next.generation += 1;
            next
        });
        Ok(previous.generation + 1)
    }
}
