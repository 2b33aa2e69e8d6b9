//! Environment -> typed configuration, validated at cold start: a missing or malformed variable
//! stops the function before its first request, with a message naming the variable.

use std::str::FromStr;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required (see template.yaml for its value)")]
    Missing(&'static str),
    #[error("environment variable {name} must be {expected}")]
    Invalid {
        name: &'static str,
        expected: &'static str,
    },
}

/// Where env lookups come from: the process, or a map in tests.
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Env for std::collections::HashMap<&str, &str> {
    fn get(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|v| (*v).to_owned())
            .filter(|v| !v.is_empty())
    }
}

pub fn required(env: &impl Env, name: &'static str) -> Result<String, ConfigError> {
    env.get(name).ok_or(ConfigError::Missing(name))
}

pub fn parsed_or<T: FromStr>(
    env: &impl Env,
    name: &'static str,
    default: T,
    expected: &'static str,
) -> Result<T, ConfigError> {
    match env.get(name) {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse()
            .map_err(|_| ConfigError::Invalid { name, expected }),
    }
}

/// A function's configuration could not be read: the function does not start.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Keys(#[from] crate::crypto::KeyRingError),
    #[error("{0}")]
    Other(String),
}

/// The key ring from `INLET_KEYS` (and `INLET_ACTIVE_KEY`).
pub fn key_ring(env: &impl Env) -> Result<crate::crypto::KeyRing, crate::crypto::KeyRingError> {
    let spec = env
        .get("INLET_KEYS")
        .ok_or(crate::crypto::KeyRingError::Missing)?;
    crate::crypto::KeyRing::parse(&spec, env.get("INLET_ACTIVE_KEY").as_deref())
}

/// Where the code runs, from `INLET_ENV`, read once: production fails closed when a store
/// cannot answer, refuses private delivery addresses and refuses demo data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployment {
    Production,
    /// Anything else: a laptop, CI, a dev or staging stack.
    Other,
}

impl Deployment {
    pub fn from_env(env: &impl Env) -> Deployment {
        match env.get("INLET_ENV").as_deref() {
            Some("production") => Deployment::Production,
            _ => Deployment::Other,
        }
    }

    /// From this process's environment.
    pub fn current() -> Deployment {
        Deployment::from_env(&ProcessEnv)
    }

    pub fn is_production(self) -> bool {
        self == Deployment::Production
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn missing_and_malformed_variables_are_named() {
        let env: HashMap<&str, &str> = [("N", "abc"), ("EMPTY", "")].into();
        assert_eq!(required(&env, "X"), Err(ConfigError::Missing("X")));
        assert_eq!(required(&env, "EMPTY"), Err(ConfigError::Missing("EMPTY")));
        assert_eq!(
            parsed_or(&env, "N", 5u32, "a number"),
            Err(ConfigError::Invalid {
                name: "N",
                expected: "a number"
            })
        );
        assert_eq!(parsed_or(&env, "ABSENT", 5u32, "a number"), Ok(5));
        assert!(ConfigError::Missing("SOURCES_TABLE")
            .to_string()
            .contains("SOURCES_TABLE"));
    }

    #[test]
    fn only_the_word_production_means_production() {
        let production: HashMap<&str, &str> = [("INLET_ENV", "production")].into();
        assert!(Deployment::from_env(&production).is_production());
        for other in ["", "prod", "Production", "local", "staging"] {
            let env: HashMap<&str, &str> = [("INLET_ENV", other)].into();
            assert_eq!(Deployment::from_env(&env), Deployment::Other, "{other:?}");
        }
    }
}
