//! The templates [`TemplateDecomposer::builtin`](super::TemplateDecomposer::builtin)
//! starts with.

use std::time::Duration;

use super::{GoalTemplate, PhaseTemplate, TaskTemplate};
use crate::Priority;

/// A task needing `capabilities`, estimated at `hours`.
fn task<const N: usize>(id: &str, name: &str, capabilities: [&str; N], hours: u64) -> TaskTemplate {
    TaskTemplate::new(id)
        .name(name)
        .capabilities(capabilities)
        .estimated_duration(Duration::from_secs(hours * 3600))
}

pub(super) fn templates() -> Vec<GoalTemplate> {
    vec![ml_model(), market_analysis(), software_feature()]
}

fn ml_model() -> GoalTemplate {
    GoalTemplate::new(
        "ml-model",
        [
            "develop ml model",
            "develop machine learning model",
            "train model",
        ],
        [
            PhaseTemplate::new(
                "requirements",
                [task(
                    "requirements",
                    "Requirements analysis: {goal}",
                    ["analysis"],
                    4,
                )
                .priority(Priority::High)],
            ),
            PhaseTemplate::new(
                "design",
                [
                    task("model-design", "Model design", ["ml"], 6),
                    task(
                        "data-design",
                        "Data pipeline design",
                        ["data-engineering"],
                        4,
                    ),
                ],
            ),
            PhaseTemplate::new(
                "implementation",
                [
                    task(
                        "features",
                        "Feature engineering",
                        ["data-engineering", "python"],
                        8,
                    ),
                    task("training", "Model training", ["ml", "gpu"], 12)
                        .depends_on(["model-design", "features"]),
                ],
            ),
            PhaseTemplate::new(
                "testing",
                [
                    task("evaluation", "Offline evaluation", ["ml", "statistics"], 4),
                    task("integration", "Integration tests", ["testing"], 3),
                ],
            ),
        ],
    )
}

fn market_analysis() -> GoalTemplate {
    GoalTemplate::new(
        "market-analysis",
        ["market analysis", "market research", "competitive analysis"],
        [
            PhaseTemplate::new(
                "scoping",
                [
                    task("scope", "Scope and questions: {goal}", ["strategy"], 2)
                        .priority(Priority::High),
                ],
            ),
            PhaseTemplate::new(
                "research",
                [
                    task("sizing", "Market sizing", ["research", "statistics"], 6),
                    task("competitors", "Competitor landscape", ["research"], 5),
                    task("survey", "Customer survey", ["survey"], 8),
                    task("regulation", "Regulatory scan", ["legal"], 3).priority(Priority::Low),
                ],
            ),
            PhaseTemplate::new(
                "analysis",
                [
                    task(
                        "trends",
                        "Trend analysis",
                        ["statistics", "data-analysis"],
                        4,
                    ),
                    task("swot", "SWOT", ["strategy"], 3),
                ],
            ),
            PhaseTemplate::new(
                "synthesis",
                [
                    task("report", "Write the report", ["writing"], 5),
                    task("review", "Executive review", ["strategy", "writing"], 2)
                        .priority(Priority::High)
                        .depends_on(["report"]),
                ],
            ),
        ],
    )
}

fn software_feature() -> GoalTemplate {
    GoalTemplate::new(
        "software-feature",
        ["implement feature", "build feature", "develop feature"],
        [
            PhaseTemplate::new(
                "design",
                [task("spec", "Specification: {goal}", ["design"], 3)],
            ),
            PhaseTemplate::new(
                "development",
                [
                    task("backend", "Backend", ["backend"], 8),
                    task("frontend", "Frontend", ["frontend"], 6),
                ],
            ),
            PhaseTemplate::new(
                "testing",
                [
                    task("tests", "Automated tests", ["testing"], 4),
                    task("qa", "Manual QA", ["qa"], 2),
                ],
            ),
            PhaseTemplate::new(
                "deployment",
                [task("release", "Release", ["ops"], 1).priority(Priority::High)],
            ),
        ],
    )
}
