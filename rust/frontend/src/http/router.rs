//! The v2 REST protocol's paths (KServe's, plus the Triton extensions its clients call) read
//! into an `Endpoint`: what the request asks, with its model and version percent-decoded.

use http::Method;

use crate::restrict::Protocol;

/// A model and, when the path names one, its version (or alias).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    /// Model name.
    pub name: String,
    /// Version or alias; empty when the path names none.
    pub version: String,
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /v2`: server metadata.
    ServerMetadata,
    /// `GET /v2/health/live`.
    ServerLive,
    /// `GET /v2/health/ready`.
    ServerReady,
    /// `GET /v2/models/{m}[/versions/{v}]`.
    ModelMetadata(ModelRef),
    /// `GET .../ready`.
    ModelReady(ModelRef),
    /// `GET .../config` (Triton's model configuration extension).
    ModelConfig(ModelRef),
    /// `GET .../stats`, or `GET /v2/models/stats` for every model (Triton's statistics
    /// extension).
    ModelStatistics(Option<ModelRef>),
    /// `POST .../infer`.
    Infer(ModelRef),
    /// `POST /v2/repository/index` (Triton's model repository extension).
    RepositoryIndex,
    /// `POST /v2/repository/models/{m}/load`.
    RepositoryLoad(String),
    /// `POST /v2/repository/models/{m}/unload`.
    RepositoryUnload(String),
    /// `GET /v2/openapi.json`: this API's OpenAPI description.
    OpenApi,
}

impl Endpoint {
    /// The group Triton's `--http-restricted-api` restricts it under.
    pub fn protocol(&self) -> Protocol {
        match self {
            Endpoint::ServerLive | Endpoint::ServerReady | Endpoint::ModelReady(_) => {
                Protocol::Health
            }
            Endpoint::ServerMetadata | Endpoint::ModelMetadata(_) | Endpoint::OpenApi => {
                Protocol::Metadata
            }
            Endpoint::Infer(_) => Protocol::Inference,
            Endpoint::ModelConfig(_) => Protocol::ModelConfig,
            Endpoint::ModelStatistics(_) => Protocol::Statistics,
            Endpoint::RepositoryIndex
            | Endpoint::RepositoryLoad(_)
            | Endpoint::RepositoryUnload(_) => Protocol::ModelRepository,
        }
    }
}

/// Why a request has no endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoute {
    /// No endpoint has this path (404).
    NotFound,
    /// The path exists, not with this method (405); the method it takes.
    Method(&'static str),
}

/// `%XX` sequences decoded (tritonclient quotes model names in paths); None when the result
/// is not UTF-8 or a sequence is malformed.
pub fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes.get(index + 1..index + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn expect(method: &Method, wanted: Method, endpoint: Endpoint) -> Result<Endpoint, NoRoute> {
    if *method == wanted {
        Ok(endpoint)
    } else if wanted == Method::GET {
        Err(NoRoute::Method("GET"))
    } else {
        Err(NoRoute::Method("POST"))
    }
}

/// The endpoint of `method` on `path` (the query, if any, already removed).
pub fn route(method: &Method, path: &str) -> Result<Endpoint, NoRoute> {
    let path = path.strip_suffix('/').unwrap_or(path);
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let decode = |segment: &str| percent_decode(segment).ok_or(NoRoute::NotFound);
    match segments.as_slice() {
        ["v2"] => expect(method, Method::GET, Endpoint::ServerMetadata),
        ["v2", "health", "live"] => expect(method, Method::GET, Endpoint::ServerLive),
        ["v2", "health", "ready"] => expect(method, Method::GET, Endpoint::ServerReady),
        ["v2", "openapi.json"] => expect(method, Method::GET, Endpoint::OpenApi),
        ["v2", "models", "stats"] => expect(method, Method::GET, Endpoint::ModelStatistics(None)),
        ["v2", "repository", "index"] => expect(method, Method::POST, Endpoint::RepositoryIndex),
        ["v2", "repository", "models", model, "load"] => expect(
            method,
            Method::POST,
            Endpoint::RepositoryLoad(decode(model)?),
        ),
        ["v2", "repository", "models", model, "unload"] => expect(
            method,
            Method::POST,
            Endpoint::RepositoryUnload(decode(model)?),
        ),
        ["v2", "models", model, rest @ ..] => {
            let (version, action) = match rest {
                ["versions", version, action @ ..] => (decode(version)?, action),
                action => (String::new(), action),
            };
            let model = ModelRef {
                name: decode(model)?,
                version,
            };
            match action {
                [] => expect(method, Method::GET, Endpoint::ModelMetadata(model)),
                ["ready"] => expect(method, Method::GET, Endpoint::ModelReady(model)),
                ["config"] => expect(method, Method::GET, Endpoint::ModelConfig(model)),
                ["stats"] => expect(method, Method::GET, Endpoint::ModelStatistics(Some(model))),
                ["infer"] => expect(method, Method::POST, Endpoint::Infer(model)),
                _ => Err(NoRoute::NotFound),
            }
        }
        _ => Err(NoRoute::NotFound),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn model(name: &str, version: &str) -> ModelRef {
        ModelRef {
            name: name.into(),
            version: version.into(),
        }
    }

    #[test]
    fn every_path_of_the_protocol_routes() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(route(&get, "/v2"), Ok(Endpoint::ServerMetadata));
        assert_eq!(route(&get, "/v2/"), Ok(Endpoint::ServerMetadata));
        assert_eq!(route(&get, "/v2/health/live"), Ok(Endpoint::ServerLive));
        assert_eq!(route(&get, "/v2/health/ready"), Ok(Endpoint::ServerReady));
        assert_eq!(route(&get, "/v2/openapi.json"), Ok(Endpoint::OpenApi));
        assert_eq!(
            route(&get, "/v2/models/mlp"),
            Ok(Endpoint::ModelMetadata(model("mlp", "")))
        );
        assert_eq!(
            route(&get, "/v2/models/mlp/versions/2/ready"),
            Ok(Endpoint::ModelReady(model("mlp", "2")))
        );
        assert_eq!(
            route(&get, "/v2/models/mlp/config"),
            Ok(Endpoint::ModelConfig(model("mlp", "")))
        );
        assert_eq!(
            route(&get, "/v2/models/mlp/versions/canary/stats"),
            Ok(Endpoint::ModelStatistics(Some(model("mlp", "canary"))))
        );
        assert_eq!(
            route(&get, "/v2/models/stats"),
            Ok(Endpoint::ModelStatistics(None))
        );
        assert_eq!(
            route(&post, "/v2/models/mlp/versions/1/infer"),
            Ok(Endpoint::Infer(model("mlp", "1")))
        );
        assert_eq!(
            route(&post, "/v2/repository/index"),
            Ok(Endpoint::RepositoryIndex)
        );
        assert_eq!(
            route(&post, "/v2/repository/models/a%20b/load"),
            Ok(Endpoint::RepositoryLoad("a b".into()))
        );
        assert_eq!(
            route(&post, "/v2/repository/models/mlp/unload"),
            Ok(Endpoint::RepositoryUnload("mlp".into()))
        );
    }

    #[test]
    fn wrong_methods_and_unknown_paths_are_told_apart() {
        assert_eq!(
            route(&Method::GET, "/v2/models/mlp/infer"),
            Err(NoRoute::Method("POST"))
        );
        assert_eq!(
            route(&Method::POST, "/v2/health/ready"),
            Err(NoRoute::Method("GET"))
        );
        assert_eq!(route(&Method::GET, "/v1/models"), Err(NoRoute::NotFound));
        assert_eq!(
            route(&Method::GET, "/v2/models/mlp/other"),
            Err(NoRoute::NotFound)
        );
        assert_eq!(
            route(&Method::GET, "/v2/models/%zz"),
            Err(NoRoute::NotFound)
        );
    }

    #[test]
    fn percent_decoding_keeps_utf8_and_refuses_the_rest() {
        assert_eq!(percent_decode("a%2Fb%C3%A9").as_deref(), Some("a/bé"));
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
