//! Triton's restricted protocols (`--grpc-restricted-protocol=<protocols>:<key>=<value>`): calls
//! of a restricted protocol must carry the header `triton-grpc-protocol-<key>: <value>`, else
//! they are refused with Triton's status and words (UNAVAILABLE, "This protocol is restricted,
//! expecting header '...'"). Checked at the door, before a call is answered natively or
//! forwarded, so one check covers both paths. Without restrictions the front end pays one
//! `is_empty` test per call.
//!
//! Triton's HTTP twin, `--http-restricted-api=<apis>:<key>=<value>` (`Restrictions::parse_http`),
//! takes the same groups; its requests must carry the header `<key>: <value>` itself, else they
//! are refused 403 with Triton's words ("This API is restricted, expecting header '...'").

use http::HeaderMap;

use crate::grpc::{Code, Status};

/// The header prefix Triton puts before the configured key.
pub const HEADER_PREFIX: &str = "triton-grpc-protocol-";

/// Triton's protocol groups, and what ferroserve's own services belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// ServerLive, ServerReady, ModelReady, and grpc.health.v1.
    Health,
    /// ServerMetadata, ModelMetadata, and server reflection.
    Metadata,
    /// ModelInfer, ModelStreamInfer.
    Inference,
    /// The system and CUDA shared-memory RPCs.
    SharedMemory,
    /// ModelConfig.
    ModelConfig,
    /// RepositoryIndex, RepositoryModelLoad/Unload, ferroserve's admin and feature services.
    ModelRepository,
    /// ModelStatistics and ferroserve's drift service.
    Statistics,
    /// TraceSetting.
    Trace,
    /// LogSettings.
    Logging,
}

const PROTOCOLS: [(&str, Protocol); 9] = [
    ("health", Protocol::Health),
    ("metadata", Protocol::Metadata),
    ("inference", Protocol::Inference),
    ("shared-memory", Protocol::SharedMemory),
    ("model-config", Protocol::ModelConfig),
    ("model-repository", Protocol::ModelRepository),
    ("statistics", Protocol::Statistics),
    ("trace", Protocol::Trace),
    ("logging", Protocol::Logging),
];

impl Protocol {
    /// The protocol of a call's `:path` (`/package.Service/Method`), None for unknown services.
    pub fn of_path(path: &str) -> Option<Protocol> {
        let (service, method) = path.strip_prefix('/')?.rsplit_once('/')?;
        match service {
            "inference.GRPCInferenceService" => Some(match method {
                "ServerLive" | "ServerReady" | "ModelReady" => Protocol::Health,
                "ServerMetadata" | "ModelMetadata" => Protocol::Metadata,
                "ModelInfer" | "ModelStreamInfer" => Protocol::Inference,
                "ModelConfig" => Protocol::ModelConfig,
                "ModelStatistics" => Protocol::Statistics,
                "RepositoryIndex" | "RepositoryModelLoad" | "RepositoryModelUnload" => {
                    Protocol::ModelRepository
                }
                "TraceSetting" => Protocol::Trace,
                "LogSettings" => Protocol::Logging,
                _ if method.contains("SharedMemory") => Protocol::SharedMemory,
                _ => return None,
            }),
            "grpc.health.v1.Health" => Some(Protocol::Health),
            "grpc.reflection.v1.ServerReflection" | "grpc.reflection.v1alpha.ServerReflection" => {
                Some(Protocol::Metadata)
            }
            "ferroserve.admin.v1.AdminService" | "ferroserve.features.v1.FeatureService" => {
                Some(Protocol::ModelRepository)
            }
            "ferroserve.drift.v1.DriftService" => Some(Protocol::Statistics),
            _ => None,
        }
    }
}

/// The restrictions in force: per protocol, the header and value its calls must carry.
#[derive(Debug, Clone, Default)]
pub struct Restrictions {
    rules: Vec<(Protocol, String, Vec<u8>)>,
    /// HTTP's rules (`--http-restricted-api`): the header is the key itself, and a refusal is
    /// PERMISSION_DENIED (403) with Triton's HTTP words.
    http: bool,
}

impl Restrictions {
    /// Parses Triton's flag values (`health,inference:infer-key=infer-value`, one per flag).
    /// Errors name the value and what is wrong: an unknown protocol, a missing `:` or `=`, an
    /// empty key, a key that is not a header name, a protocol restricted twice.
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<Restrictions, String> {
        Restrictions::parse_with(specs, HEADER_PREFIX, false)
    }

    /// Parses Triton's `--http-restricted-api` values (same syntax and groups): requests must
    /// carry the header `<key>: <value>`.
    pub fn parse_http<S: AsRef<str>>(specs: &[S]) -> Result<Restrictions, String> {
        Restrictions::parse_with(specs, "", true)
    }

    fn parse_with<S: AsRef<str>>(
        specs: &[S],
        prefix: &str,
        http: bool,
    ) -> Result<Restrictions, String> {
        let mut rules: Vec<(Protocol, String, Vec<u8>)> = Vec::new();
        for spec in specs {
            let spec = spec.as_ref();
            let (protocols, pair) = spec
                .split_once(':')
                .ok_or_else(|| format!("{spec:?}: expected <protocols>:<key>=<value>"))?;
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("{spec:?}: expected <key>=<value> after ':'"))?;
            let header = format!("{prefix}{}", key.to_ascii_lowercase());
            if key.is_empty() || http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                return Err(format!("{spec:?}: {key:?} is not usable as a header name"));
            }
            for name in protocols.split(',').map(str::trim) {
                let protocol = PROTOCOLS
                    .iter()
                    .find(|(known, _)| *known == name)
                    .map(|(_, protocol)| *protocol)
                    .ok_or_else(|| {
                        let known: Vec<&str> = PROTOCOLS.iter().map(|(n, _)| *n).collect();
                        format!(
                            "{spec:?}: unknown protocol {name:?} (one of {})",
                            known.join(", ")
                        )
                    })?;
                if rules.iter().any(|(p, _, _)| *p == protocol) {
                    return Err(format!("{spec:?}: protocol {name:?} is restricted twice"));
                }
                rules.push((protocol, header.clone(), value.as_bytes().to_vec()));
            }
        }
        Ok(Restrictions { rules, http })
    }

    /// Whether nothing is restricted.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Refuses a call of a restricted protocol without its header and value.
    pub fn check(&self, path: &str, headers: &HeaderMap) -> Result<(), Status> {
        self.check_with(path, |name| headers.get(name).map(|v| v.as_bytes()))
    }

    /// `check` for calls whose metadata is (lowercase name, value) pairs, as another server
    /// (grpc.aio) hands them over.
    pub fn check_pairs<'a>(
        &self,
        path: &str,
        pairs: impl IntoIterator<Item = (&'a str, &'a [u8])> + Clone,
    ) -> Result<(), Status> {
        self.check_with(path, |name| {
            pairs
                .clone()
                .into_iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value)
        })
    }

    fn check_with<'a>(
        &self,
        path: &str,
        header_value: impl FnOnce(&str) -> Option<&'a [u8]>,
    ) -> Result<(), Status> {
        let Some(protocol) = Protocol::of_path(path) else {
            return Ok(());
        };
        self.check_protocol(protocol, header_value)
    }

    /// Refuses a call of `protocol` without its header and value (`header_value` looks a
    /// header up by its lowercase name).
    pub fn check_protocol<'a>(
        &self,
        protocol: Protocol,
        header_value: impl FnOnce(&str) -> Option<&'a [u8]>,
    ) -> Result<(), Status> {
        let Some((_, header, value)) = self.rules.iter().find(|(p, _, _)| *p == protocol) else {
            return Ok(());
        };
        if header_value(header).is_some_and(|offered| same(offered, value)) {
            return Ok(());
        }
        Err(if self.http {
            Status::new(
                Code::PermissionDenied,
                format!("This API is restricted, expecting header '{header}'"),
            )
        } else {
            Status::new(
                Code::Unavailable,
                format!("This protocol is restricted, expecting header '{header}'"),
            )
        })
    }
}

/// Equality in time that depends on the lengths only, not on where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn calls_of_restricted_protocols_need_the_header() {
        let rules = Restrictions::parse(&[
            "health,inference:infer-key=infer-value",
            "model-repository:admin-key=admin-value",
        ])
        .unwrap();
        let infer = "/inference.GRPCInferenceService/ModelInfer";
        let error = rules.check(infer, &headers(&[])).unwrap_err();
        assert_eq!(error.code, Code::Unavailable);
        assert_eq!(
            error.message,
            "This protocol is restricted, expecting header 'triton-grpc-protocol-infer-key'"
        );
        let good = headers(&[("triton-grpc-protocol-infer-key", "infer-value")]);
        assert!(rules.check(infer, &good).is_ok());
        let wrong = headers(&[("triton-grpc-protocol-infer-key", "infer-valuE")]);
        assert!(rules.check(infer, &wrong).is_err());
        assert!(rules.check("/grpc.health.v1.Health/Check", &good).is_ok());
        assert!(
            rules
                .check(
                    "/inference.GRPCInferenceService/RepositoryModelUnload",
                    &good
                )
                .is_err()
        );
        let admin = "/ferroserve.admin.v1.AdminService/PushVersion";
        assert!(rules.check(admin, &good).is_err());
        // Unrestricted protocols and unknown services pass.
        let stats = "/inference.GRPCInferenceService/ModelStatistics";
        assert!(rules.check(stats, &headers(&[])).is_ok());
        assert!(rules.check("/some.Other/Call", &headers(&[])).is_ok());
        assert!(Restrictions::parse::<&str>(&[]).unwrap().is_empty());
        // The same rules over (name, value) pairs.
        let pairs = [("triton-grpc-protocol-infer-key", &b"infer-value"[..])];
        assert!(rules.check_pairs(infer, pairs).is_ok());
        let error = rules.check_pairs(admin, pairs).unwrap_err();
        assert_eq!(error.code, Code::Unavailable);
        assert!(rules.check_pairs(infer, []).is_err());
    }

    #[test]
    fn http_rules_take_the_key_as_the_header_and_answer_forbidden() {
        let rules =
            Restrictions::parse_http(&["model-repository,statistics:Admin-Key=s3cret"]).unwrap();
        let offered = headers(&[("admin-key", "s3cret")]);
        let lookup = |map: &HeaderMap, name: &str| map.get(name).map(|v| v.as_bytes().to_vec());
        let check = |protocol, map: &HeaderMap| {
            let value = lookup(map, "admin-key");
            rules.check_protocol(protocol, |_| value.as_deref())
        };
        assert!(check(Protocol::ModelRepository, &offered).is_ok());
        let error = check(Protocol::Statistics, &headers(&[])).unwrap_err();
        assert_eq!(error.code, Code::PermissionDenied);
        assert_eq!(
            error.message,
            "This API is restricted, expecting header 'admin-key'"
        );
        assert!(check(Protocol::Inference, &headers(&[])).is_ok());
        assert!(Restrictions::parse_http(&["nothing:a=b"]).is_err());
    }

    #[test]
    fn bad_flags_say_what_is_wrong() {
        let error = |spec: &str| Restrictions::parse(&[spec]).unwrap_err();
        assert!(error("inference").contains("<protocols>:<key>=<value>"));
        assert!(error("inference:key").contains("<key>=<value>"));
        assert!(error("inference:=v").contains("header name"));
        assert!(error("infer:k=v").contains("unknown protocol \"infer\""));
        let twice = Restrictions::parse(&["inference:a=1", "inference:b=2"]).unwrap_err();
        assert!(twice.contains("restricted twice"));
    }
}
