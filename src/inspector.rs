//! The inspector core: the rules that turn container observations into health
//! findings.
//!
//! It is a plain state machine over the per-game [`Baseline`]s and does no I/O:
//! the tick core (`tick`) feeds it the answers of Docker one at a time, and
//! holds the decisions around them (which records are valid, when a tick gives
//! up on dockerd).

use std::collections::HashMap;

use crate::ending::EndReason;

/// One game runtime that should be running, and the container that runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeRecord {
    /// The game's id, as the record source names it.
    pub game_id: String,
    /// The Docker container id or name the record points at.
    pub container_id: String,
}

impl RuntimeRecord {
    /// A record for `game_id` run by `container_id`.
    pub fn new(game_id: impl Into<String>, container_id: impl Into<String>) -> Self {
        RuntimeRecord {
            game_id: game_id.into(),
            container_id: container_id.into(),
        }
    }
}

/// Whether a container's `State.Status` is `restarting`: the restart
/// policy's wait between a death and the next start (moby sets it while its
/// back-off runs), a restart under way rather than a container that stays
/// down.
pub(crate) fn restart_under_way(status: &str) -> bool {
    status == "restarting"
}

/// What one successful inspect of a container said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The full container id Docker answered with (64 hex digits).
    pub container_id: String,
    /// Docker's `RestartCount`: restarts made by the restart policy.
    pub restart_count: u64,
    /// `State.Status`: created, running, paused, restarting, removing, exited or dead.
    pub status: String,
    /// `State.Health.Status`, or `""` when the container has no healthcheck.
    pub health: String,
    /// What else `State` says about why, read only with `--details extended`
    /// (`None` otherwise, and when Docker reported none of it).
    pub details: Option<Box<StateDetails>>,
}

/// The rest of an inspect's `State` that tells an operator why a container
/// is unhealthy: how it last exited, and what its healthcheck last said.
///
/// Every field is optional: Docker does not report it, or reports only a
/// placeholder (Go's zero time for a container that never started or never
/// finished, an empty `Error`, the exit code and OOM flag it resets to 0 and
/// false each time the container starts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateDetails {
    /// `State.ExitCode` of the last exit.
    pub exit_code: Option<i64>,
    /// `State.OOMKilled`: whether the kernel's OOM killer ended the last run.
    pub oom_killed: Option<bool>,
    /// `State.Error`: why Docker could not start or run the container.
    pub error: Option<String>,
    /// `State.StartedAt`, RFC 3339 as Docker wrote it.
    pub started_at: Option<String>,
    /// `State.FinishedAt`, RFC 3339 as Docker wrote it.
    pub finished_at: Option<String>,
    /// `State.Health.FailingStreak`: failed probes in a row.
    pub health_failing_streak: Option<u64>,
    /// The `Output` of the last probe in `State.Health.Log`, cut to
    /// [`crate::docker::MAX_TEXT_BYTES`] on a character boundary.
    pub health_output: Option<String>,
    /// The outputs of the last [`crate::docker::PROBES_KEPT`] probes, oldest
    /// first, each cut like `health_output`: an incident's evidence (facts
    /// carry the last one only).
    pub health_log: Vec<String>,
    /// How the container last ended, when the observation is about an end
    /// (it is down, or restarted): not Docker's word but the classifier's
    /// (`ending`), which the schedule adds.
    pub reason: Option<EndReason>,
    /// `HostConfig.RestartPolicy.Name` (`no`, `always`, `unless-stopped`,
    /// `on-failure`): read for the classifier of ends (a container under
    /// `always` found exited was stopped through the API), never published.
    pub restart_policy: Option<String>,
}

impl StateDetails {
    /// Whether nothing at all is known.
    pub(crate) fn is_empty(&self) -> bool {
        *self == StateDetails::default()
    }
}

/// What the inspector last saw of a game: which container, at which restart count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baseline {
    /// The full id of the container last observed for the game.
    pub container_id: String,
    /// Its `RestartCount` at that observation.
    pub restart_count: u64,
}

/// Why an observation is unhealthy; one observation can have several reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `RestartCount` grew since the last observation of the same container.
    Restarted,
    /// `State.Status` is not `running`.
    NotRunning,
    /// The healthcheck reports `unhealthy`.
    Unhealthy,
}

impl Reason {
    /// A short name for logs.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::Restarted => "restarted",
            Reason::NotRunning => "not_running",
            Reason::Unhealthy => "unhealthy",
        }
    }
}

/// An unhealthy observation: the material of an `inspect_unhealthy` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The game the container runs.
    pub game_id: String,
    /// The observation that was judged unhealthy.
    pub observation: Observation,
    /// Every rule that fired, in rule order.
    pub reasons: Vec<Reason>,
}

/// The per-game baselines and the rules applied to each observation.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Inspector {
    baselines: HashMap<String, Baseline>,
    /// Whether the baselines changed since [`Inspector::take_changed`].
    changed: bool,
}

impl Inspector {
    /// An inspector that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// An inspector that starts from baselines saved earlier.
    pub(crate) fn with_baselines(baselines: HashMap<String, Baseline>) -> Self {
        Inspector {
            baselines,
            changed: false,
        }
    }

    /// Whether the baselines changed since the last call (so they need saving).
    pub(crate) fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The baselines, keyed by game id.
    pub(crate) fn baselines(&self) -> &HashMap<String, Baseline> {
        &self.baselines
    }

    /// The baseline of one game, if it has one.
    pub fn baseline(&self, game_id: &str) -> Option<&Baseline> {
        self.baselines.get(game_id)
    }

    /// Drops the baseline of every game that is not in the fresh record list.
    ///
    /// Called once per tick, after a successful listing and before any inspect,
    /// so that a game that left and came back is seen afresh.
    pub(crate) fn prune(&mut self, records: &[RuntimeRecord]) {
        if self.baselines.is_empty() {
            return;
        }
        let live: std::collections::HashSet<&str> =
            records.iter().map(|r| r.game_id.as_str()).collect();
        let before = self.baselines.len();
        self.baselines
            .retain(|game, _| live.contains(game.as_str()));
        self.changed |= self.baselines.len() != before;
    }

    /// Applies the rules to one successful inspect and stores the new baseline.
    ///
    /// The restart rule needs a baseline of the same container: a first
    /// observation of a game, or of a new container id for it, only seeds the
    /// baseline, and a lower `RestartCount` (Docker resets it to 0 on a manual
    /// `docker start` or `docker restart`) re-seeds it. The status and health
    /// rules need no history and apply to every observation.
    pub(crate) fn observe(&mut self, game_id: &str, observation: Observation) -> Option<Finding> {
        // Whether the restart rule fires, and the baseline updated in place
        // (the steady state allocates nothing per record).
        let restarted = match self.baselines.get_mut(game_id) {
            Some(b) => {
                let same_container = b.container_id == observation.container_id;
                let restarted = same_container && observation.restart_count > b.restart_count;
                if !same_container {
                    b.container_id.clone_from(&observation.container_id);
                }
                self.changed |= !same_container || b.restart_count != observation.restart_count;
                b.restart_count = observation.restart_count;
                restarted
            }
            None => {
                self.baselines.insert(
                    game_id.to_owned(),
                    Baseline {
                        container_id: observation.container_id.clone(),
                        restart_count: observation.restart_count,
                    },
                );
                self.changed = true;
                false
            }
        };

        let mut reasons = Vec::new();
        if restarted {
            reasons.push(Reason::Restarted);
        }
        if observation.status != "running" {
            reasons.push(Reason::NotRunning);
        }
        if observation.health == "unhealthy" {
            reasons.push(Reason::Unhealthy);
        }

        if reasons.is_empty() {
            None
        } else {
            Some(Finding {
                game_id: game_id.to_owned(),
                observation,
                reasons,
            })
        }
    }
}

/// Whether `s` may be put into a request path as a container id or name.
///
/// Docker's own rule for ids and names is `^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`;
/// the length cap is ours (full ids are 64 characters, names far shorter).
pub fn is_valid_container_ref(s: &str) -> bool {
    let s = s.strip_prefix('/').unwrap_or(s);
    let mut chars = s.chars();
    s.len() >= 2
        && s.len() <= 255
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn obs(container: &str, restarts: u64, status: &str, health: &str) -> Observation {
        Observation {
            container_id: container.to_owned(),
            restart_count: restarts,
            status: status.to_owned(),
            health: health.to_owned(),
            details: None,
        }
    }

    /// Feeds a sequence of observations for one game and returns, per step,
    /// the reasons that fired (empty when the step emitted nothing).
    fn check(steps: &[Observation]) -> Vec<Vec<Reason>> {
        let mut inspector = Inspector::new();
        steps
            .iter()
            .map(|o| {
                inspector
                    .observe("g-1", o.clone())
                    .map(|f| f.reasons)
                    .unwrap_or_default()
            })
            .collect()
    }

    use Reason::*;

    #[test]
    fn first_observation_only_seeds_baseline() {
        assert_eq!(check(&[obs(A, 7, "running", "")]), vec![vec![]]);
        assert_eq!(check(&[obs(A, 7, "running", "healthy")]), vec![vec![]]);
    }

    #[test]
    fn first_observation_still_reports_status_and_health() {
        assert_eq!(
            check(&[obs(A, 0, "exited", "")]),
            vec![vec![NotRunning]],
            "a stopped container is reported without history"
        );
        assert_eq!(
            check(&[obs(A, 0, "running", "unhealthy")]),
            vec![vec![Unhealthy]]
        );
    }

    #[test]
    fn restart_count_increase_emits_once() {
        let steps = [
            obs(A, 0, "running", ""),
            obs(A, 2, "running", ""),
            obs(A, 2, "running", ""),
            obs(A, 2, "running", ""),
        ];
        assert_eq!(check(&steps), vec![vec![], vec![Restarted], vec![], vec![]]);
    }

    #[test]
    fn every_rule_table() {
        // (previous observation or none, current observation, expected reasons)
        let table: &[(Option<Observation>, Observation, &[Reason])] = &[
            (None, obs(A, 0, "running", ""), &[]),
            (
                Some(obs(A, 0, "running", "")),
                obs(A, 1, "running", ""),
                &[Restarted],
            ),
            (
                Some(obs(A, 3, "running", "")),
                obs(A, 1, "running", ""),
                &[],
            ),
            (
                Some(obs(A, 3, "running", "")),
                obs(B, 9, "running", ""),
                &[],
            ),
            (
                Some(obs(A, 0, "running", "")),
                obs(A, 0, "paused", ""),
                &[NotRunning],
            ),
            (
                Some(obs(A, 0, "running", "")),
                obs(A, 0, "restarting", ""),
                &[NotRunning],
            ),
            (
                Some(obs(A, 0, "running", "")),
                obs(A, 0, "created", ""),
                &[NotRunning],
            ),
            (
                Some(obs(A, 0, "running", "")),
                obs(A, 0, "dead", ""),
                &[NotRunning],
            ),
            (
                Some(obs(A, 0, "running", "")),
                obs(A, 0, "running", "starting"),
                &[],
            ),
            (
                Some(obs(A, 0, "running", "")),
                obs(A, 0, "running", "healthy"),
                &[],
            ),
            (
                Some(obs(A, 0, "running", "")),
                obs(A, 0, "running", "unhealthy"),
                &[Unhealthy],
            ),
            (
                Some(obs(A, 1, "running", "")),
                obs(A, 4, "restarting", "unhealthy"),
                &[Restarted, NotRunning, Unhealthy],
            ),
            (
                Some(obs(A, 1, "running", "")),
                obs(B, 4, "exited", ""),
                &[NotRunning],
            ),
        ];
        for (previous, current, expected) in table {
            let mut inspector = Inspector::new();
            if let Some(previous) = previous {
                inspector.observe("g", previous.clone());
            }
            let got = inspector
                .observe("g", current.clone())
                .map(|f| f.reasons)
                .unwrap_or_default();
            assert_eq!(&got, expected, "previous {previous:?}, current {current:?}");
        }
    }

    #[test]
    fn changed_container_id_reseeds_then_counts_from_new_container() {
        let steps = [
            obs(A, 5, "running", ""),
            obs(B, 9, "running", ""),
            obs(B, 10, "running", ""),
        ];
        assert_eq!(check(&steps), vec![vec![], vec![], vec![Restarted]]);
    }

    #[test]
    fn lower_restart_count_reseeds() {
        let steps = [
            obs(A, 5, "running", ""),
            obs(A, 0, "running", ""),
            obs(A, 0, "running", ""),
            obs(A, 1, "running", ""),
        ];
        assert_eq!(check(&steps), vec![vec![], vec![], vec![], vec![Restarted]]);
    }

    #[test]
    fn stopped_container_is_reported_every_tick() {
        let steps = [obs(A, 0, "exited", ""), obs(A, 0, "exited", "")];
        assert_eq!(check(&steps), vec![vec![NotRunning], vec![NotRunning]]);
    }

    #[test]
    fn observe_stores_the_new_baseline() {
        let mut inspector = Inspector::new();
        inspector.observe("g", obs(A, 3, "exited", ""));
        assert_eq!(
            inspector.baseline("g"),
            Some(&Baseline {
                container_id: A.into(),
                restart_count: 3
            })
        );
    }

    #[test]
    fn finding_carries_the_observation() {
        let mut inspector = Inspector::new();
        let finding = inspector.observe("g-9", obs(B, 2, "exited", "")).unwrap();
        assert_eq!(finding.game_id, "g-9");
        assert_eq!(finding.observation, obs(B, 2, "exited", ""));
    }

    #[test]
    fn changes_are_reported_once_and_only_when_real() {
        let mut inspector = Inspector::new();
        assert!(!inspector.take_changed());
        inspector.observe("g", obs(A, 1, "running", ""));
        assert!(inspector.take_changed());
        assert!(!inspector.take_changed());
        inspector.observe("g", obs(A, 1, "exited", ""));
        assert!(
            !inspector.take_changed(),
            "status is not part of the baseline"
        );
        inspector.observe("g", obs(A, 2, "running", ""));
        assert!(inspector.take_changed());
        inspector.prune(&[RuntimeRecord::new("g", A)]);
        assert!(!inspector.take_changed());
        inspector.prune(&[]);
        assert!(inspector.take_changed());
    }

    #[test]
    fn saved_baselines_report_a_restart_made_while_away() {
        let mut saved = HashMap::new();
        saved.insert(
            "g".to_string(),
            Baseline {
                container_id: A.into(),
                restart_count: 3,
            },
        );
        let mut inspector = Inspector::with_baselines(saved);
        let f = inspector.observe("g", obs(A, 5, "running", "")).unwrap();
        assert_eq!(f.reasons, vec![Reason::Restarted]);
    }

    #[test]
    fn prune_drops_games_not_listed() {
        let mut inspector = Inspector::new();
        inspector.observe("kept", obs(A, 1, "running", ""));
        inspector.observe("gone", obs(B, 1, "running", ""));
        inspector.prune(&[RuntimeRecord::new("kept", A), RuntimeRecord::new("new", B)]);
        assert!(inspector.baseline("kept").is_some());
        assert!(inspector.baseline("gone").is_none());
        assert_eq!(inspector.baselines().len(), 1);
    }

    #[test]
    fn pruned_game_that_returns_is_seen_afresh() {
        let mut inspector = Inspector::new();
        inspector.observe("g", obs(A, 1, "running", ""));
        inspector.prune(&[]);
        let finding = inspector.observe("g", obs(A, 4, "running", ""));
        assert_eq!(finding, None, "a returning game only re-seeds");
    }
}
