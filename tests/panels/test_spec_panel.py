"""The speculation panel in a real Textual app: live acceptance and decision, then the sweep grid."""
from __future__ import annotations

from textual.app import App, ComposeResult

from panels.spec_panel import SpecPanel


class _Host(App):
    def compose(self) -> ComposeResult:
        yield SpecPanel(id="spec")


async def test_spec_panel_shows_decision_acceptance_and_grid():
    app = _Host()
    async with app.run_test(size=(110, 24)) as pilot:
        panel = app.query_one(SpecPanel)
        assert "no speculation sweep yet" in str(panel.render())
        panel.update_stats({"speculation_mode": "auto", "speculation": "on", "spec_k": 4,
                            "speculation_reason": "predicted 1.9x at batch 1 with k=4", "acceptance_rate": 0.62,
                            "mean_accepted_length": 3.1, "spec_draft_tokens": 100, "spec_accepted_tokens": 62,
                            "acceptance_by_position": [0.9, 0.7, 0.5, 0.3]})
        panel.update_grid([
            {"workload": "code-edit", "batch_size": 1, "speculation": "off", "speedup": 1.0},
            {"workload": "code-edit", "batch_size": 1, "speculation": "ngram", "speedup": 1.85},
            {"workload": "code-edit", "batch_size": 32, "speculation": "ngram", "speedup": 0.6},
        ])
        await pilot.pause()
        text = str(panel.render())
        assert "now on k=4" in text and "predicted 1.9x" in text
        assert "acceptance 62%" in text and "1:90% 2:70% 3:50% 4:30%" in text
        assert "1.85x" in text and "0.60x" in text
