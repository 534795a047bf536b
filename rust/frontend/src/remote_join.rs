//! `RemoteJoin`: the feature join of a model version with views stored in Redis (Feast's
//! layout, `ferroserve_feast`), run by the front end per request before queueing, so no
//! executor thread ever waits on the network. The route calls `join` with the request inputs
//! it matched; every Redis view's rows are fetched concurrently over the store's one
//! multiplexed connection, the embedded views are read from one snapshot of the version's
//! store, and the graph inputs come back in owned buffers to queue. The Python server runs the
//! same join for the requests it answers (`join_with`, through a store of its own). A model
//! without Redis views has no `RemoteJoin` and pays nothing for it.

use std::sync::Arc;

use ferroserve_feast::{
    FeastError, FeastNames, FeastProject, FeastView, RedisStore, RedisStoreConfig,
    StoreStatsSnapshot,
};
use ferroserve_features::{FeatureStore, FetchedRows, JoinPlan, ViewSource, unix_micros_now};
use tokio::sync::OnceCell;

/// One Redis-backed view: where it is in the plan and how Feast stores it.
#[derive(Debug)]
struct RedisView {
    /// Its position in the plan (`JoinPlan::view_position`).
    position: usize,
    /// Its Redis keys and fields.
    feast: FeastView,
    /// The request-input position of each of its key parts, in the view's key order.
    key_inputs: Vec<usize>,
}

/// Why a request could not be joined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinFailure {
    /// A reject-policy view could not serve one of its rows: NOT_FOUND with this message.
    #[error("{0}")]
    Rejected(String),
    /// The buffers do not fit the plan, an embedded view is not loaded, or the store could not
    /// be created: INTERNAL with this message.
    #[error("feature lookup failed: {0}")]
    Internal(String),
}

/// A Redis view the model cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum RemoteJoinError {
    /// The view is not declared, or its key is not made of request inputs.
    #[error("feature view '{view}' is not declared in the model's features.pbtxt")]
    UnknownView {
        /// The view.
        view: String,
    },
    /// Feast's names do not fit the view.
    #[error(transparent)]
    Feast(#[from] FeastError),
}

/// A request's graph inputs, joined.
#[derive(Debug)]
pub struct Joined {
    /// One buffer per graph input, in the plan's model-input order.
    pub buffers: Vec<Vec<u8>>,
    /// Their shapes: the request's rows, then the input's dims.
    pub shapes: Vec<Vec<i64>>,
}

/// A model version's per-request feature join; see the module doc.
#[derive(Debug)]
pub struct RemoteJoin {
    /// The declaration checked against the model.
    plan: Arc<JoinPlan>,
    /// The embedded views' store (Redis views have no table in it).
    store: Arc<FeatureStore>,
    /// Where the Redis store is and its timeout.
    redis: RedisStoreConfig,
    /// The store, created on the first request: `RedisStore::new` must run on the front end's
    /// runtime (the connection's background tasks live there), and the route is built in
    /// Python, outside it. Shared by `Arc` with whoever reads its counters.
    client: OnceCell<Arc<RedisStore>>,
    /// The Redis-backed views.
    views: Vec<RedisView>,
}

impl RemoteJoin {
    /// The join of `plan`, whose views named in `redis_views` (with Feast's names for them)
    /// are read from the Redis store `redis` in `project`, the others from `store`. Errors
    /// name the view that does not fit (an unknown view, Feast names that do not match).
    pub fn new(
        plan: Arc<JoinPlan>,
        store: Arc<FeatureStore>,
        redis: RedisStoreConfig,
        project: &FeastProject,
        redis_views: &[(String, FeastNames)],
    ) -> Result<RemoteJoin, RemoteJoinError> {
        let mut views = Vec::with_capacity(redis_views.len());
        for (name, names) in redis_views {
            let (Some(position), Some(layout)) = (plan.view_position(name), plan.view_layout(name))
            else {
                return Err(RemoteJoinError::UnknownView { view: name.clone() });
            };
            let key_inputs = layout
                .key()
                .iter()
                .map(|part| {
                    plan.request_inputs()
                        .iter()
                        .position(|input| input.name == part.name)
                        .ok_or_else(|| RemoteJoinError::UnknownView { view: name.clone() })
                })
                .collect::<Result<Vec<_>, _>>()?;
            views.push(RedisView {
                position,
                feast: FeastView::new(layout, project, names)?,
                key_inputs,
            });
        }
        Ok(RemoteJoin {
            plan,
            store,
            redis,
            client: OnceCell::new(),
            views,
        })
    }

    /// The Redis store's counters (all zero before the first request).
    pub fn redis_stats(&self) -> StoreStatsSnapshot {
        self.client
            .get()
            .map_or_else(StoreStatsSnapshot::default, |client| client.stats())
    }

    /// The store, created on first use (on the calling runtime).
    async fn client(&self) -> Result<&Arc<RedisStore>, JoinFailure> {
        self.client
            .get_or_try_init(|| async { RedisStore::new(&self.redis).map(Arc::new) })
            .await
            .map_err(|error| JoinFailure::Internal(format!("feature store: {error}")))
    }

    /// Where the Redis store is and its timeout, for a caller that keeps a store of its own
    /// (see `join_with`).
    pub fn redis_config(&self) -> &RedisStoreConfig {
        &self.redis
    }

    /// The graph inputs of one request of `rows` rows whose request inputs are `request` (in
    /// the plan's request-input order), fetched through the join's own store (created on the
    /// calling runtime on first use). Redis failures never fail the call: their rows are
    /// unavailable and served by each view's policy.
    pub async fn join(&self, request: &[&[u8]], rows: usize) -> Result<Joined, JoinFailure> {
        let client = self.client().await?;
        self.join_with(client, request, rows).await
    }

    /// `join` through `client`, a store of `redis_config()` that the caller created on its
    /// own runtime. The Python server joins the requests it answers this way: had it used the
    /// join's store, a first request from Python would have put the connection's task on
    /// Python's runtime, and every native request would then cross threads to reach it.
    pub async fn join_with(
        &self,
        client: &RedisStore,
        request: &[&[u8]],
        rows: usize,
    ) -> Result<Joined, JoinFailure> {
        if request.len() != self.plan.request_inputs().len() {
            return Err(JoinFailure::Internal(format!(
                "{} request inputs were passed for {} declared. This is a bug.",
                request.len(),
                self.plan.request_inputs().len()
            )));
        }
        let fetches = self.views.iter().map(|view| {
            let keys: Vec<&[u8]> = view.key_inputs.iter().map(|&i| request[i]).collect();
            async move { client.fetch(&view.feast, &keys, rows).await }
        });
        let fetched: Vec<FetchedRows> = futures_util::future::join_all(fetches)
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|error| JoinFailure::Internal(error.to_string()))?;
        self.gather(&fetched, request, rows)
    }

    /// The join once the Redis views' rows are here (`fetched`: one per Redis view, in
    /// `views` order).
    fn gather(
        &self,
        fetched: &[FetchedRows],
        request: &[&[u8]],
        rows: usize,
    ) -> Result<Joined, JoinFailure> {
        let snapshot = self.store.load();
        let mut sources = Vec::with_capacity(self.plan.view_layouts().len());
        for (position, layout) in self.plan.view_layouts().iter().enumerate() {
            let source = match self.views.iter().position(|view| view.position == position) {
                Some(index) => ViewSource::Fetched(&fetched[index]),
                None => ViewSource::Embedded(snapshot.table(position).ok_or_else(|| {
                    JoinFailure::Internal(format!(
                        "feature view '{}' has no snapshot loaded",
                        layout.view()
                    ))
                })?),
            };
            sources.push(source);
        }
        let mut buffers: Vec<Vec<u8>> = self
            .plan
            .model_inputs()
            .iter()
            .map(|input| vec![0u8; rows * input.row_bytes()])
            .collect();
        let rejections = {
            let mut out: Vec<&mut [u8]> = buffers.iter_mut().map(Vec::as_mut_slice).collect();
            self.plan
                .gather_from(&sources, request, rows, unix_micros_now(), &mut out)
                .map_err(|error| JoinFailure::Internal(error.to_string()))?
        };
        if let Some(rejection) = rejections.first() {
            return Err(JoinFailure::Rejected(rejection.to_string()));
        }
        let shapes = self.plan.model_input_shapes(rows);
        Ok(Joined { buffers, shapes })
    }
}

#[cfg(test)]
mod tests {
    use ferroserve_features::{
        ColumnValues, Declaration, Feature, FeatureValue, FeatureView, KeyColumn, MissingPolicy,
        ModelInput, ModelInputAssembly, ModelSignature, RequestInput, Segment, TableBuilder,
    };
    use ferroserve_tensor::DataType;

    use super::*;

    fn view(name: &str, feature: &str, default: f32, on_missing: MissingPolicy) -> FeatureView {
        FeatureView {
            name: name.into(),
            key: vec!["user_id".into()],
            features: vec![Feature {
                name: feature.into(),
                datatype: DataType::Fp32,
                default: FeatureValue::Fp32(default),
            }],
            max_age: None,
            on_missing,
        }
    }

    /// x = [user (Redis), region (embedded)] for `user_id`; region holds user 7 only.
    fn join(on_missing: MissingPolicy) -> RemoteJoin {
        let declaration = Declaration {
            request_inputs: vec![RequestInput {
                name: "user_id".into(),
                datatype: DataType::Int64,
                columns: 1,
            }],
            views: vec![
                view("user", "age", -1.0, on_missing),
                view("region", "risk", -2.0, MissingPolicy::UseDefault),
            ],
            assembly: vec![ModelInputAssembly {
                model_input: "x".into(),
                segments: vec![Segment::View("user".into()), Segment::View("region".into())],
            }],
        };
        let signature = ModelSignature {
            inputs: vec![ModelInput {
                name: "x".into(),
                datatype: DataType::Fp32,
                dims: vec![2],
            }],
        };
        let plan = Arc::new(JoinPlan::compile(&declaration, &signature).expect("plan"));
        let store = Arc::new(FeatureStore::new(plan.view_layouts()));
        let region = plan.view_layout("region").expect("declared");
        let table = TableBuilder::new(region)
            .key("user_id", KeyColumn::Int64(&[7]))
            .and_then(|b| b.feature("risk", ColumnValues::Fp32(&[0.5])))
            .and_then(TableBuilder::build)
            .expect("table");
        store.install(vec![table]).expect("install");
        let names = [("user".to_owned(), FeastNames::default())];
        let config = RedisStoreConfig::new("redis://127.0.0.1:1/0");
        RemoteJoin::new(plan, store, config, &FeastProject::new("p"), &names).expect("join")
    }

    fn fetched(join: &RemoteJoin) -> FetchedRows {
        let layout = join.plan.view_layout("user").expect("declared");
        let mut rows = FetchedRows::with_capacity(layout, 2);
        rows.push_found(&30f32.to_le_bytes(), None);
        rows.push_unavailable();
        rows
    }

    fn floats(bytes: &[u8]) -> Vec<f32> {
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    #[test]
    fn fetched_and_embedded_views_fill_the_graph_input() {
        let join = join(MissingPolicy::UseDefault);
        let keys: Vec<u8> = [7i64, 8].iter().flat_map(|k| k.to_le_bytes()).collect();
        let joined = join.gather(&[fetched(&join)], &[&keys], 2).expect("joined");
        assert_eq!(floats(&joined.buffers[0]), [30.0, 0.5, -1.0, -2.0]);
        assert_eq!(joined.shapes, [vec![2, 2]]);
        assert_eq!(join.plan.stats().snapshot().views[0].unavailable, 1);
    }

    #[test]
    fn a_reject_view_row_it_cannot_serve_rejects_the_request() {
        let join = join(MissingPolicy::Reject);
        let keys: Vec<u8> = [7i64, 8].iter().flat_map(|k| k.to_le_bytes()).collect();
        let failure = join
            .gather(&[fetched(&join)], &[&keys], 2)
            .expect_err("rejected");
        assert_eq!(
            failure,
            JoinFailure::Rejected(
                "the store of feature view 'user' could not be asked for user_id=8".into()
            )
        );
    }

    #[test]
    fn an_unknown_redis_view_is_refused() {
        let join = join(MissingPolicy::UseDefault);
        let names = [("nope".to_owned(), FeastNames::default())];
        let error = RemoteJoin::new(
            Arc::clone(&join.plan),
            Arc::clone(&join.store),
            RedisStoreConfig::new("redis://127.0.0.1:1/0"),
            &FeastProject::new("p"),
            &names,
        )
        .expect_err("unknown");
        assert!(error.to_string().contains("'nope'"), "{error}");
    }
}
