//! Rule-based decomposition: goal patterns select phase templates.

use std::collections::BTreeSet;
use std::time::Duration;

use super::Decomposer;
use crate::Priority;
use crate::planning::{Plan, PlanningError};
use crate::workflow::{StepDef, WorkflowDef};

/// One atomic subtask of a [`PhaseTemplate`].
///
/// With serde, a task is
/// `{"id", "name"?, "capabilities"?, "priority"?, "estimated_duration"?, "depends_on"?}`.
/// `name` may contain `{goal}`, replaced by the goal. Without `depends_on`,
/// a task depends on every task of the earlier phases that no task depends
/// on yet (the plan's exits so far), so it starts only once all earlier
/// work is done, while the tasks of one phase run side by side; with it,
/// on exactly the tasks listed (`[]`: on none).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
#[non_exhaustive]
pub struct TaskTemplate {
    /// Key of the step, unique within the template.
    pub id: String,
    /// Display name; `{goal}` is replaced by the goal. Defaults to the id.
    #[cfg_attr(feature = "serde", serde(default))]
    pub name: Option<String>,
    /// Capabilities the executing agent needs.
    #[cfg_attr(feature = "serde", serde(default))]
    pub capabilities: Vec<String>,
    /// Priority of the task.
    #[cfg_attr(feature = "serde", serde(default))]
    pub priority: Priority,
    /// Expected run time on an agent of speed 1.
    #[cfg_attr(feature = "serde", serde(default))]
    pub estimated_duration: Option<Duration>,
    /// Tasks it depends on, of this or earlier phases; `None`: the exit
    /// tasks of the previous phase.
    #[cfg_attr(feature = "serde", serde(default))]
    pub depends_on: Option<Vec<String>>,
}

impl TaskTemplate {
    /// A task with no capabilities, normal priority, no estimate, depending
    /// on the previous phase.
    pub fn new(id: impl Into<String>) -> Self {
        TaskTemplate {
            id: id.into(),
            name: None,
            capabilities: Vec::new(),
            priority: Priority::Normal,
            estimated_duration: None,
            depends_on: None,
        }
    }

    /// Sets the display name (`{goal}` is replaced by the goal).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the required capabilities.
    pub fn capabilities<I, S>(mut self, capabilities: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.capabilities = capabilities.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the priority.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the estimated duration.
    pub fn estimated_duration(mut self, duration: Duration) -> Self {
        self.estimated_duration = Some(duration);
        self
    }

    /// Sets the tasks it depends on (`[]`: none).
    pub fn depends_on<I, S>(mut self, tasks: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.depends_on = Some(tasks.into_iter().map(Into::into).collect());
        self
    }
}

/// A named group of tasks, one phase of a plan.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
#[non_exhaustive]
pub struct PhaseTemplate {
    /// The phase's name, unique within the template.
    pub name: String,
    /// Its tasks.
    pub tasks: Vec<TaskTemplate>,
}

impl PhaseTemplate {
    /// A phase of `tasks`.
    pub fn new(name: impl Into<String>, tasks: impl IntoIterator<Item = TaskTemplate>) -> Self {
        PhaseTemplate {
            name: name.into(),
            tasks: tasks.into_iter().collect(),
        }
    }
}

/// Goal patterns and the phases a matching goal decomposes into.
///
/// A pattern matches a goal when each of its words appears in the goal as
/// a whole word, in any order, ignoring case and punctuation: the pattern
/// `"ml model"` matches "Develop an ML model" but not "Develop an HTML
/// modeler".
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
#[non_exhaustive]
pub struct GoalTemplate {
    /// The template's name: the name of the plan's workflow.
    pub name: String,
    /// Version of the plan's workflow.
    #[cfg_attr(feature = "serde", serde(default = "first_version"))]
    pub version: u32,
    /// The goal patterns it answers.
    pub patterns: Vec<String>,
    /// Its phases, in order.
    pub phases: Vec<PhaseTemplate>,
}

#[cfg(feature = "serde")]
fn first_version() -> u32 {
    1
}

/// The lower-case words of a text: runs of letters and digits.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

impl GoalTemplate {
    /// A template (version 1) answering `patterns` with `phases`.
    pub fn new<I, S>(
        name: impl Into<String>,
        patterns: I,
        phases: impl IntoIterator<Item = PhaseTemplate>,
    ) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        GoalTemplate {
            name: name.into(),
            version: 1,
            patterns: patterns.into_iter().map(Into::into).collect(),
            phases: phases.into_iter().collect(),
        }
    }

    /// How specific the best pattern matching `goal` is — its number of
    /// words — or `None` if no pattern matches.
    pub fn matches(&self, goal: &str) -> Option<usize> {
        let goal: BTreeSet<String> = words(goal).collect();
        self.patterns
            .iter()
            .filter_map(|pattern| {
                let wanted: BTreeSet<String> = words(pattern).collect();
                (!wanted.is_empty() && wanted.is_subset(&goal)).then_some(wanted.len())
            })
            .max()
    }

    /// The plan of this template for `goal`: one agent step per task,
    /// phases as given.
    ///
    /// # Errors
    ///
    /// [`PlanningError::Definition`] if the tasks do not form a valid
    /// workflow (a duplicate id, an unknown dependency, a cycle, …);
    /// a [`Plan::new`] error if a task depends on a later phase or a
    /// phase is empty or named twice; [`PlanningError::NameTooLong`] if a
    /// task name with the goal put in would pass
    /// [`MAX_TASK_NAME_BYTES`] (checked before it is built).
    pub fn plan(&self, goal: &str) -> Result<Plan, PlanningError> {
        let mut builder = WorkflowDef::builder(self.name.as_str(), self.version);
        // Tasks of the phases so far that no task depends on.
        let mut previous_exits: Vec<&str> = Vec::new();
        let mut needed: BTreeSet<&str> = BTreeSet::new();
        let mut placed: Vec<&str> = Vec::new();
        for phase in &self.phases {
            for task in &phase.tasks {
                let mut step = StepDef::agent(task.id.as_str())
                    .capabilities(task.capabilities.iter().map(String::as_str))
                    .priority(task.priority);
                if let Some(name) = &task.name {
                    step = step.name(expand_name(&task.id, name, goal)?);
                }
                if let Some(duration) = task.estimated_duration {
                    step = step.estimated_duration(duration);
                }
                builder = builder.step(step);
                let sources = match &task.depends_on {
                    Some(explicit) => explicit.iter().map(String::as_str).collect(),
                    None => previous_exits.clone(),
                };
                for source in sources {
                    builder = builder.edge(source, task.id.as_str());
                }
            }
            for task in &phase.tasks {
                placed.push(task.id.as_str());
                match &task.depends_on {
                    Some(explicit) => needed.extend(explicit.iter().map(String::as_str)),
                    None => needed.extend(previous_exits.iter().copied()),
                }
            }
            previous_exits = placed
                .iter()
                .copied()
                .filter(|id| !needed.contains(id))
                .collect();
        }
        let workflow = builder.build()?;
        Plan::new(
            workflow,
            self.phases
                .iter()
                .map(|p| (p.name.as_str(), p.tasks.iter().map(|t| t.id.as_str()))),
        )
    }
}

/// The rule-based [`Decomposer`]: the template whose pattern matches the
/// goal most specifically (most words; the earlier template on a tie)
/// gives the plan. A goal matching no template is
/// [`PlanningError::NoMatchingTemplate`] — never a silent one-step plan.
///
/// Templates are data: with serde a host loads its own (a JSON list of
/// [`GoalTemplate`]s), or starts from [`builtin`](Self::builtin). Every
/// template is checked when the decomposer is built, so a bad template
/// fails at load time, not on the first goal that selects it.
///
/// ```
/// use taskweave::planning::{
///     Decomposer, GoalTemplate, PhaseTemplate, PlanningError, TaskTemplate, TemplateDecomposer,
/// };
/// use std::time::Duration;
///
/// let hour = Duration::from_secs(3600);
/// let ml = GoalTemplate::new(
///     "ml-model",
///     ["develop ml model", "train model"],
///     [
///         PhaseTemplate::new("requirements", [TaskTemplate::new("requirements").capabilities(["analysis"]).estimated_duration(hour)]),
///         PhaseTemplate::new("design", [TaskTemplate::new("design").capabilities(["ml"]).estimated_duration(2 * hour)]),
///         PhaseTemplate::new("implementation", [
///             TaskTemplate::new("features").capabilities(["python"]).estimated_duration(3 * hour),
///             TaskTemplate::new("training").capabilities(["ml", "gpu"]).estimated_duration(4 * hour),
///         ]),
///         PhaseTemplate::new("testing", [TaskTemplate::new("evaluate").capabilities(["ml"]).estimated_duration(hour)]),
///     ],
/// );
/// let decomposer = TemplateDecomposer::new([ml])?;
///
/// let plan = decomposer.decompose("Develop an ML model to predict churn")?;
/// let names: Vec<&str> = plan.phases().iter().map(|p| p.name()).collect();
/// assert_eq!(names, ["requirements", "design", "implementation", "testing"]);
/// // Both implementation tasks follow the design and precede the evaluation.
/// let workflow = plan.workflow();
/// let evaluate = workflow.step_id("evaluate").unwrap();
/// assert_eq!(workflow.predecessors(evaluate).len(), 2);
///
/// assert_eq!(
///     decomposer.decompose("Plan a birthday party"),
///     Err(PlanningError::NoMatchingTemplate { goal: "Plan a birthday party".into() })
/// );
/// # Ok::<(), PlanningError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateDecomposer {
    templates: Vec<GoalTemplate>,
}

impl TemplateDecomposer {
    /// A decomposer over `templates`, in order of preference on ties.
    ///
    /// # Errors
    ///
    /// [`PlanningError::DuplicateTemplate`] for a name given twice;
    /// [`PlanningError::TemplateWithoutPattern`] for a template with no
    /// pattern or a pattern without words; [`PlanningError::InvalidTemplate`]
    /// wrapping the reason a template does not make a valid plan.
    pub fn new(templates: impl IntoIterator<Item = GoalTemplate>) -> Result<Self, PlanningError> {
        let templates: Vec<GoalTemplate> = templates.into_iter().collect();
        let mut names = BTreeSet::new();
        for template in &templates {
            if !names.insert(template.name.as_str()) {
                return Err(PlanningError::DuplicateTemplate {
                    template: template.name.clone(),
                });
            }
            if template.patterns.is_empty()
                || template.patterns.iter().any(|p| words(p).next().is_none())
            {
                return Err(PlanningError::TemplateWithoutPattern {
                    template: template.name.clone(),
                });
            }
            template
                .plan("")
                .map_err(|source| PlanningError::InvalidTemplate {
                    template: template.name.clone(),
                    source: Box::new(source),
                })?;
        }
        Ok(TemplateDecomposer { templates })
    }

    /// The built-in templates: `ml-model` (requirements → design →
    /// implementation → testing), `market-analysis` (scoping → research →
    /// analysis → synthesis) and `software-feature` (design → development
    /// → testing → deployment), with capabilities, priorities and
    /// estimates a host can read with [`templates`](Self::templates) and
    /// adapt.
    pub fn builtin() -> Self {
        TemplateDecomposer {
            templates: super::builtin::templates(),
        }
    }

    /// The templates, in order.
    pub fn templates(&self) -> &[GoalTemplate] {
        &self.templates
    }

    /// The template `goal` selects, if any.
    pub fn select(&self, goal: &str) -> Option<&GoalTemplate> {
        let mut best: Option<(usize, &GoalTemplate)> = None;
        for template in &self.templates {
            if let Some(score) = template
                .matches(goal)
                .filter(|&score| best.is_none_or(|(top, _)| score > top))
            {
                best = Some((score, template));
            }
        }
        best.map(|(_, template)| template)
    }
}

impl Decomposer for TemplateDecomposer {
    type Error = PlanningError;

    /// # Errors
    ///
    /// [`PlanningError::NoMatchingTemplate`] if no pattern matches `goal`.
    fn decompose(&self, goal: &str) -> Result<Plan, PlanningError> {
        self.select(goal)
            .ok_or_else(|| PlanningError::NoMatchingTemplate {
                goal: goal.to_string(),
            })?
            .plan(goal)
    }
}

/// The longest task name, in bytes, that [`GoalTemplate::plan`] builds by
/// putting the goal into a template's `{goal}` placeholders: 1 MiB. A name
/// with many placeholders and a long goal would otherwise need an
/// allocation of their product.
pub const MAX_TASK_NAME_BYTES: usize = 1 << 20;

/// `name` with every `{goal}` replaced by `goal`, if the result fits in
/// [`MAX_TASK_NAME_BYTES`]; its length is computed with checked arithmetic
/// before anything is allocated.
fn expand_name(task: &str, name: &str, goal: &str) -> Result<String, PlanningError> {
    const PLACEHOLDER: &str = "{goal}";
    let count = name.matches(PLACEHOLDER).count();
    let bytes = count
        .checked_mul(goal.len())
        .and_then(|goals| goals.checked_add(name.len() - count * PLACEHOLDER.len()))
        .unwrap_or(usize::MAX);
    if bytes > MAX_TASK_NAME_BYTES {
        return Err(PlanningError::NameTooLong {
            task: task.to_string(),
            bytes,
            max: MAX_TASK_NAME_BYTES,
        });
    }
    Ok(name.replace(PLACEHOLDER, goal))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::DefinitionError;

    fn task(id: &str) -> TaskTemplate {
        TaskTemplate::new(id)
    }

    fn two_phases() -> GoalTemplate {
        GoalTemplate::new(
            "report",
            ["write report", "report"],
            [
                PhaseTemplate::new(
                    "gather",
                    [
                        task("sources"),
                        task("notes").depends_on(["sources"]),
                        task("figures"),
                    ],
                ),
                PhaseTemplate::new(
                    "write",
                    [
                        task("draft").name("Draft: {goal}"),
                        task("appendix").depends_on(["figures"]),
                    ],
                ),
            ],
        )
    }

    fn keys(plan: &Plan, ids: impl Iterator<Item = crate::StepId>) -> Vec<&str> {
        ids.map(|s| plan.workflow().step(s).map_or("", |s| s.id.as_str()))
            .collect()
    }

    #[test]
    fn phases_chain_through_their_exit_tasks() -> Result<(), PlanningError> {
        let plan = two_phases().plan("Q3 sales")?;
        let workflow = plan.workflow();
        let draft = workflow.step_id("draft").expect("draft");
        // `sources` is needed by `notes`, so only `notes` and `figures` exit.
        let before_draft = keys(&plan, workflow.predecessors(draft).map(|(s, _)| s));
        assert_eq!(before_draft, ["notes", "figures"]);
        let appendix = workflow.step_id("appendix").expect("appendix");
        let before_appendix = keys(&plan, workflow.predecessors(appendix).map(|(s, _)| s));
        assert_eq!(before_appendix, ["figures"]);
        assert_eq!(
            workflow.step(draft).map(|s| s.name.as_str()),
            Some("Draft: Q3 sales")
        );
        assert_eq!(plan.phase_of(draft), Some(1));
        Ok(())
    }

    #[test]
    fn a_later_phase_waits_for_every_unfinished_earlier_task() -> Result<(), PlanningError> {
        // `b` has no successor in its phase nor the next: the third phase
        // still waits for it.
        let template = GoalTemplate::new(
            "t",
            ["go"],
            [
                PhaseTemplate::new("p1", [task("a"), task("b")]),
                PhaseTemplate::new(
                    "p2",
                    [task("c").depends_on(["a"]), task("d").depends_on(["c"])],
                ),
                PhaseTemplate::new("p3", [task("e")]),
            ],
        );
        let plan = template.plan("go")?;
        let workflow = plan.workflow();
        let e = workflow.step_id("e").expect("e");
        let before_e = keys(&plan, workflow.predecessors(e).map(|(s, _)| s));
        assert_eq!(before_e, ["b", "d"]);
        Ok(())
    }

    #[test]
    fn the_most_specific_pattern_wins_and_ties_keep_order() -> Result<(), PlanningError> {
        let general = GoalTemplate::new(
            "general",
            ["analysis"],
            [PhaseTemplate::new("only", [task("think")])],
        );
        let market = GoalTemplate::new(
            "market",
            ["market analysis"],
            [PhaseTemplate::new("only", [task("survey")])],
        );
        let twin = GoalTemplate::new(
            "twin",
            ["Analysis!"],
            [PhaseTemplate::new("only", [task("x")])],
        );
        let decomposer = TemplateDecomposer::new([general, market, twin])?;
        let pick = |goal| decomposer.select(goal).map(|t| t.name.as_str());
        assert_eq!(pick("A comprehensive MARKET analysis."), Some("market"));
        assert_eq!(pick("cost analysis"), Some("general"));
        assert_eq!(pick("analyses"), None);
        assert_eq!(pick(""), None);
        Ok(())
    }

    #[test]
    fn bad_templates_fail_when_loaded() {
        let one =
            |name: &str, patterns: Vec<&str>, phases| GoalTemplate::new(name, patterns, phases);
        let fine = || vec![PhaseTemplate::new("p", [task("a")])];
        assert_eq!(
            TemplateDecomposer::new([one("t", vec!["x"], fine()), one("t", vec!["y"], fine())]),
            Err(PlanningError::DuplicateTemplate {
                template: "t".into()
            })
        );
        for patterns in [vec![], vec!["x", " -- "]] {
            assert_eq!(
                TemplateDecomposer::new([one("t", patterns, fine())]),
                Err(PlanningError::TemplateWithoutPattern {
                    template: "t".into()
                })
            );
        }
        let unknown = vec![PhaseTemplate::new("p", [task("a").depends_on(["ghost"])])];
        assert!(matches!(
            TemplateDecomposer::new([one("t", vec!["x"], unknown)]),
            Err(PlanningError::InvalidTemplate { template, source })
                if template == "t" && matches!(*source, PlanningError::Definition(DefinitionError::UnknownStep { .. }))
        ));
        let backwards = vec![
            PhaseTemplate::new("first", [task("a").depends_on(["b"])]),
            PhaseTemplate::new("second", [task("b").depends_on(Vec::<String>::new())]),
        ];
        assert!(matches!(
            TemplateDecomposer::new([one("t", vec!["x"], backwards)]),
            Err(PlanningError::InvalidTemplate { source, .. })
                if matches!(*source, PlanningError::PhaseOrder { .. })
        ));
        let empty = vec![
            PhaseTemplate::new("p", [task("a")]),
            PhaseTemplate::new("q", []),
        ];
        assert!(matches!(
            TemplateDecomposer::new([one("t", vec!["x"], empty)]),
            Err(PlanningError::InvalidTemplate { source, .. })
                if matches!(*source, PlanningError::EmptyPhase { .. })
        ));
    }

    #[test]
    fn no_match_is_an_answer() -> Result<(), PlanningError> {
        let decomposer = TemplateDecomposer::new([two_phases()])?;
        assert_eq!(
            decomposer.decompose("bake bread"),
            Err(PlanningError::NoMatchingTemplate {
                goal: "bake bread".into()
            })
        );
        assert_eq!(decomposer.decompose("a Report")?.workflow().len(), 5);
        Ok(())
    }

    #[test]
    fn builtin_templates_are_valid_and_fully_estimated() -> Result<(), PlanningError> {
        let builtin = TemplateDecomposer::builtin();
        assert_eq!(
            TemplateDecomposer::new(builtin.templates().to_vec())?,
            builtin
        );
        for (goal, name) in [
            ("Develop ML model for fraud", "ml-model"),
            (
                "Comprehensive market analysis of EV chargers",
                "market-analysis",
            ),
            ("Implement feature: dark mode", "software-feature"),
        ] {
            let plan = builtin.decompose(goal)?;
            assert_eq!(plan.workflow().name(), name);
            assert!(plan.phases().len() >= 4);
            for (_, step) in plan.workflow().steps() {
                assert!(step.estimated_duration.is_some(), "{name}: {}", step.id);
                assert!(!step.capabilities.is_empty(), "{name}: {}", step.id);
            }
        }
        Ok(())
    }

    #[cfg(feature = "serde")]
    #[test]
    fn templates_are_data() -> Result<(), Box<dyn std::error::Error>> {
        let json = serde_json::to_string(TemplateDecomposer::builtin().templates())?;
        let loaded: Vec<GoalTemplate> = serde_json::from_str(&json)?;
        assert_eq!(
            TemplateDecomposer::new(loaded)?,
            TemplateDecomposer::builtin()
        );
        let minimal: GoalTemplate = serde_json::from_str(
            r#"{"name": "t", "patterns": ["go"], "phases": [{"name": "p", "tasks": [{"id": "a"}]}]}"#,
        )?;
        assert_eq!(minimal.version, 1);
        assert_eq!(minimal.phases[0].tasks[0], TaskTemplate::new("a"));
        let typo = serde_json::from_str::<GoalTemplate>(
            r#"{"name": "t", "patterns": ["go"], "phases": [{"name": "p", "tasks": [{"id": "a", "dependson": []}]}]}"#,
        );
        assert!(typo.is_err());
        Ok(())
    }

    #[test]
    fn a_goal_put_into_many_placeholders_is_refused_before_it_is_built() {
        let name = "{goal}".repeat(1_000);
        let template = GoalTemplate::new(
            "t",
            ["x"],
            [PhaseTemplate::new("p", [TaskTemplate::new("a").name(name)])],
        );
        let goal = "x".repeat(1_100);
        assert_eq!(
            template.plan(&goal).map(|_| ()),
            Err(PlanningError::NameTooLong {
                task: "a".to_string(),
                bytes: 1_100_000,
                max: MAX_TASK_NAME_BYTES,
            })
        );
        assert!(template.plan("short").is_ok());
    }
}
