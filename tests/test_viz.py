"""The viewer (teeny.viz): the data it draws (kernels as the scheduler makes them, nodes, gradient marks, a run on
copies), the DOT export, the page's escaping, the command line, and the page itself in headless Chromium
(skipped when `chromium` isn't installed)."""
import json, os, re, shutil, subprocess, sys
import numpy as np
import pytest
from teeny import Tensor, Device
import teeny.viz as viz
from teeny.schedule import is_realized

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def micrograd_expression(device):
  """(a*b + c).relu() and its backward: the expression docs/walkthrough.md walks through."""
  a = Tensor(2.0, requires_grad=True, device=device)
  b = Tensor(-3.0, requires_grad=True, device=device)
  c = Tensor(10.0, requires_grad=True, device=device)
  out = (a * b + c).relu()
  out.backward()
  return out, a, b, c


def test_a_fused_expression_is_one_kernel_holding_every_node(device):
  a, b = Tensor.ones(2, 3, device=device).contiguous().realize(), Tensor.ones(2, 3, device=device).contiguous().realize()
  out = (a * b + 1).relu().sum(1)
  data = viz.data(out)
  assert len(data["kernels"]) == 1 and data["kernels"][0]["name"] == "r_2_3"
  computed = [n for n in data["nodes"] if n["kernels"]]
  inputs = [n for n in data["nodes"] if not n["kernels"]]
  assert [n["op"] for n in inputs] == ["BUFFER", "BUFFER"]  # the two realized inputs: no kernel computes them
  assert len(computed) == len(data["nodes"]) - 2 and all(n["kernels"] == [0] for n in computed)
  assert sorted(data["kernels"][0]["nodes"]) == [n["id"] for n in computed]
  assert [n["op"] for n in data["nodes"] if n["root"]] == ["RESHAPE"]  # (sum(1) drops the axis the reduce kept)
  assert not is_realized(out.uop)  # drawing realizes nothing
  np.testing.assert_allclose(out.numpy(), [6.0, 6.0])


def test_softmax_kernels_with_their_code(device):
  """A softmax down the columns is three kernels everywhere: the max, the exp-and-sum, the normalization. Along
  the rows, the CPU computes each row's max and sum inside the kernel that writes the row: one kernel there."""
  x = Tensor(np.arange(12, dtype=np.float32).reshape(3, 4), device=device)
  data = viz.data(x.softmax(0))
  kernels = data["kernels"]
  assert len(kernels) == 3 and [k["kind"] for k in kernels] == ["kernel"] * 3
  assert [k["name"][0] for k in kernels] == ["r", "r", "E"]
  language = "OpenCL C" if device.startswith("CL") else "LLVM IR"
  for k in kernels:
    assert k["language"] == language and k["name"] in k["code"] and "STORE" in k["ast"] and k["ran"] is None
  assert sum(n["op"] == "REDUCE_AXIS" for n in data["nodes"]) == 2
  rows, on_cpu = viz.data(x.softmax(-1))["kernels"], not Device[device].renderer.has_threads
  assert [k["name"][0] for k in rows] == (["r"] if on_cpu else ["r", "r", "E"])
  assert rows[0]["ast"].count("REDUCE_AXIS") == (2 if on_cpu else 1)


def test_gradient_nodes_are_marked(device):
  out, a, b, c = micrograd_expression(device)
  data = viz.data([out, a.grad, b.grad, c.grad])
  marked = sorted(n["label"] for n in data["nodes"] if n["grad"])
  # the seed 1, relu's gradient (a WHERE), the two products for a and b, and each .grad's DETACH
  assert marked == ["CONST 1", "DETACH", "DETACH", "DETACH", "MUL", "MUL", "WHERE"]
  assert data["gradient_nodes"] == 7
  forward = [n for n in data["nodes"] if n["root"] and not n["grad"]]
  assert [n["op"] for n in forward] == ["WHERE"]  # relu's output: forward, though backward reads its mask
  assert len(data["kernels"]) == 7  # a, b, c stored, the relu, and a gradient per leaf (each recomputes the mask)
  assert viz.data(out)["gradient_nodes"] == 0


def test_run_times_the_kernels_on_copies_and_leaves_the_tensors_alone(device):
  p = Tensor([1.0, 2.0, 3.0], device=device).contiguous().realize()
  g = Tensor([10.0, 20.0, 30.0], device=device).contiguous().realize()
  update = p.assign(p - 0.5 * g)
  data = viz.data(update, run=True)
  assert data["ran"] and all(k["ran"]["us"] > 0 and "GB/s" in k["ran"] for k in data["kernels"])
  assert not is_realized(update.uop)
  np.testing.assert_allclose(g.numpy(), [10.0, 20.0, 30.0])
  update.realize()  # the write runs once, now
  np.testing.assert_allclose(p.numpy(), [-4.0, -8.0, -12.0])


def test_dot_has_one_cluster_per_kernel_and_declares_each_node_once(device, tmp_path):
  out, a, b, c = micrograd_expression(device)
  path = viz.dot([out, a.grad, b.grad, c.grad], tmp_path / "g.dot")
  text = open(path).read()
  data = viz.data([out, a.grad, b.grad, c.grad])
  assert text.startswith("digraph teeny {") and text.rstrip().endswith("}")
  assert text.count("{") == text.count("}") == len(data["kernels"]) + 1
  assert re.findall(r"subgraph cluster_k(\d+) \{", text) == [str(k["id"]) for k in data["kernels"]]
  declared = re.findall(r"^\s*n(\d+) \[label=", text, re.M)
  assert sorted(map(int, declared)) == list(range(len(data["nodes"])))
  assert len(re.findall(r"^\s*n\d+ -> n\d+;", text, re.M)) == sum(len(n["src"]) for n in data["nodes"])
  assert text.count('color="#c0392b"') == data["gradient_nodes"]
  if shutil.which("dot"):
    done = subprocess.run(["dot", "-Tsvg", path], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_page_escapes_the_data_for_a_script_element():
  page = viz.page({"title": "</script><script>alert(1)</script> & \u2028", "nodes": [], "kernels": [], "ran": False,
                   "gradient_nodes": 0})
  data_text = page.split('id="teeny-data">', 1)[1].split("</script>", 1)[0]
  assert "<" not in data_text and json.loads(data_text)["title"].startswith("</script>")
  assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page  # nothing from the network


def test_bad_input_is_a_clear_error(tmp_path):
  with pytest.raises(TypeError, match="not a Tensor"): viz.graph([Tensor([1.0]), np.ones(2)], tmp_path / "x.html")
  with pytest.raises(TypeError, match="a Tensor or a non-empty list"): viz.graph([], tmp_path / "x.html")
  with pytest.raises(TypeError, match="a path"): viz.graph(Tensor([1.0]) + 1, 3)


def test_command_line_draws_a_scripts_biggest_realize(tmp_path):
  out = tmp_path / "quickstart.html"
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
  done = subprocess.run([sys.executable, "-m", "teeny.viz", "-o", str(out), "--dot", str(tmp_path / "q.dot"),
                         os.path.join(ROOT, "examples", "quickstart.py"), "--device", "LLVM"],
                        env=env, capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
  assert done.returncode == 0, done.stderr
  assert "[1 kernel]" in done.stdout  # the script ran as itself
  found = re.search(r"quickstart.py: realize \d+ of (\d+), (\d+) item\(s\)", done.stderr)
  assert found and int(found.group(1)) >= 3, done.stderr  # (the script realizes several times)
  items = int(found.group(2))
  assert items >= 1 and out.read_text().count('"kind":"kernel"') == items
  assert (tmp_path / "q.dot").read_text().count("subgraph cluster_") == items


def test_command_line_refuses_a_missing_script(tmp_path):
  done = subprocess.run([sys.executable, "-m", "teeny.viz", str(tmp_path / "nothing.py")], capture_output=True,
                        text=True, timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
  assert done.returncode != 0 and "no such script" in done.stderr


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_the_page_renders_in_headless_chromium(tmp_path):
  """The page's script runs in a real browser: it draws one box per kernel and one per node, and no script error
  is caught (window.onerror lists them in #errors)."""
  out, a, b, c = micrograd_expression("LLVM")
  data = viz.data([out, a.grad, b.grad, c.grad], run=True)
  path = tmp_path / "g.html"
  path.write_text(viz.page(data), encoding="utf-8")
  done = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", path.as_uri()],
                        capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr[-2000:]
  dom = done.stdout
  body = re.search(r"<body([^>]*)>", dom).group(1)
  assert 'data-state="rendered"' in body, body
  assert f'data-kernels="{len(data["kernels"])}"' in body and f'data-nodes="{len(data["nodes"])}"' in body, body
  assert '<ul id="errors"></ul>' in dom
  assert len(re.findall(r'<g class="node[ "]', dom)) == len(data["nodes"]) == 20
  assert len(re.findall(r'<g class="node grad', dom)) == 7
  assert len(re.findall(r'<g class="kernel ', dom)) == 7
