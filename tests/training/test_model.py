from pathlib import Path

import pytest
import torch

from tests.helpers.data import fer2013_dir
from training.data import load_split
from training.export import load_checkpoint
from training.model import ServingModel

pytestmark = pytest.mark.unit  # make test-fast: no processes, no servers


def test_serving_model_averages_every_network_over_every_view(quick_runs: list[Path]) -> None:
    """The graph runs all views of all faces through each network as one batch; the rows must still
    come back to their own face."""
    nets = [load_checkpoint(run)[0] for run in quick_runs]
    serving = ServingModel(nets, crop_scales=(0.9, 1.1)).eval()
    faces = load_split(fer2013_dir(), "test").images[::500, None].float() / 255  # 8 real faces of mixed classes
    with torch.no_grad():
        one_by_one = torch.stack(
            [torch.softmax(net(view), dim=1) for net in nets for view in serving.views(faces)]
        ).mean(dim=0)
        torch.testing.assert_close(serving(faces), one_by_one)
        torch.testing.assert_close(serving(faces[3:4]), one_by_one[3:4])
