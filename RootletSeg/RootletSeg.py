"""RootletSeg: 3D Slicer module segmenting spinal nerve rootlets (nnU-Net v2) and comparing spinal with vertebral levels.

This file is widget wiring only (.ui, signals, parameter node, timers, dialogs, status text). Everything else is in
`RootletSegLogic.slicer.panel_session.PanelSession` (no Qt; tested on slicer-core scenes): Apply runs
`python -m RootletSegLogic segment ... --progress json` in a child process, levels are computed in process.
"""

import logging
import os
import sys
from pathlib import Path

import ctk
import qt
import slicer
import vtk
from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                          ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin


def _coreFolder() -> Path:
    """Folder holding RootletSegLogic/ and Resources/: beside this file once installed, the repository root else."""
    here = Path(__file__).resolve().parent
    for candidate in (here, here.parent):
        if (candidate / "RootletSegLogic" / "__init__.py").is_file():
            return candidate
    return here


if str(_coreFolder()) not in sys.path:
    sys.path.insert(0, str(_coreFolder()))

from RootletSegLogic.errors import UserError  # noqa: E402
from RootletSegLogic.slicer import child_process, dependencies, panel_session, session  # noqa: E402
from RootletSegLogic.slicer.session import Contrast, Device, LevelMethod, ModelChoice  # noqa: E402

LEVEL_UPDATE_DELAY_MS = 500
POLL_INTERVAL_MS = 100
SETTINGS = "RootletSeg/"


class RootletSeg(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("RootletSeg")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = ["Segmentations", "Markups"]
        self.parent.contributors = ["J. Krejci (NeuroPoly, Polytechnique Montreal)",
                                    "J. Valosek (NeuroPoly, Polytechnique Montreal)"]
        self.parent.helpText = _(
            "Segments spinal nerve rootlets (C2-T1) on T2w and MP2RAGE MRI with the RootletSeg nnU-Net v2 model and "
            "compares spinal with vertebral levels. Please cite: Krejci, Valosek et al., RootletSeg, Scientific Reports "
            "(2026). Model weights (MIT) are downloaded on first use. Not for clinical use.")
        self.parent.acknowledgementText = _(
            "RootletSeg model and method: NeuroPoly (Polytechnique Montreal) and collaborators (Krejci, Valosek, "
            "Chmelik, Cohen-Adad, Eippert, Callot et al.), built on nnU-Net v2 and Spinal Cord Toolbox conventions.")
        slicer.app.connect("startupCompleted()", _onStartupCompleted)


def _onStartupCompleted():
    """Register RootletSeg's terminology (segments reference its context) and the phantom in Sample Data."""
    try:
        import SampleData

        session.register_at_startup(slicer.modules.terminologies.logic(), SampleData.SampleDataLogic,
                                    lambda: slicer.mrmlScene, str(_coreFolder() / "Resources" / "Icons" / "RootletSeg.png"))
    except Exception as error:  # noqa: BLE001 - start-up goes on; the log says why
        logging.warning("RootletSeg: start-up registration failed: %s", error)


@parameterNodeWrapper
class RootletSegParameterNode:
    """The module's state, saved with the scene (cordSegmentation/cordSegmentId: any segment of any segmentation;
    outputSegmentation: level segments "C2 rootlets" .. "T1 rootlets", user segments kept)."""

    inputVolume: vtkMRMLScalarVolumeNode
    contrast: Contrast = Contrast.T2w
    model: ModelChoice = ModelChoice.rootletseg
    modelPath: str = ""  # synchronised by hand with modelPathLineEdit (a Path binding would show "." when empty)
    device: Device = Device.auto
    tta: bool = False
    outputSegmentation: vtkMRMLSegmentationNode
    cordSegmentation: vtkMRMLSegmentationNode
    cordSegmentId: str = ""
    discs: vtkMRMLMarkupsFiducialNode
    levelMethod: LevelMethod = LevelMethod.paper
    autoUpdateLevels: bool = True
    levelTable: vtkMRMLTableNode


class RootletSegWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.session = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._levelObservations = []

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(str(_coreFolder() / "Resources" / "UI" / "RootletSeg.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = RootletSegModuleLogic()
        self.session = panel_session.PanelSession(slicer.mrmlScene, python=child_process.python_executable())
        self._levelTimer = self._timer(LEVEL_UPDATE_DELAY_MS, self.updateLevels, single=True)
        self._pollTimer = self._timer(POLL_INTERVAL_MS, self._pollChild)
        self.ui.modelPathLineEdit.filters = ctk.ctkPathLineEdit.Files
        self.ui.modelPathLineEdit.nameFilters = [_("Model zip (*.zip)"), _("All files (*)")]
        self.ui.progressBar.setVisible(False)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.app.applicationLogic().GetInteractionNode(),
                         slicer.vtkMRMLInteractionNode.InteractionModeChangedEvent, self._onInteractionMode)
        for widget, signal, slot in (
            (self.ui.applyButton, "clicked(bool)", self.onApplyButton),
            (self.ui.modelPathLineEdit, "currentPathChanged(QString)", self.onModelPathChanged),
            (self.ui.modelFolderButton, "clicked(bool)", self.onModelFolder),
            (self.ui.cordSegmentSelector, "currentSegmentChanged(QString)", self.onCordSegmentChanged),
            (self.ui.cordSegmentSelector, "currentNodeChanged(vtkMRMLNode*)", self.onCordSegmentChanged),
            (self.ui.loadCordButton, "clicked(bool)", self.onLoadCordFile),
            (self.ui.placeDiscButton, "clicked(bool)", lambda: self._placePoint(pmj=False)),
            (self.ui.placePmjButton, "clicked(bool)", lambda: self._placePoint(pmj=True)),
            (self.ui.importDiscsButton, "clicked(bool)", self.onImportDiscLabels),
            (self.ui.updateLevelsButton, "clicked(bool)", lambda: self.updateLevels(showErrors=True)),
            (self.ui.showChartButton, "clicked(bool)", self.onShowChart),
            (self.ui.show3DCheckBox, "toggled(bool)", self.onShow3D),
            (self.ui.exportAllButton, "clicked(bool)", self.onExportAll),
        ):
            widget.connect(signal, slot)
        for kind, button in self._exportButtons().items():
            button.connect("clicked(bool)", lambda _checked=False, k=kind: self.onExport(k))
        self.initializeParameterNode()

    def _timer(self, interval, slot, single=False):
        timer = qt.QTimer()
        timer.setSingleShot(single)
        timer.setInterval(interval)
        timer.connect("timeout()", slot)
        return timer

    def _exportButtons(self):
        return {"labelmap": self.ui.exportLabelmapButton, "segmentation": self.ui.exportSegmentationButton,
                "table_tsv": self.ui.exportTableTsvButton, "table_csv": self.ui.exportTableCsvButton,
                "planning_json": self.ui.exportPlanningJsonButton, "markups": self.ui.exportMarkupsButton}

    def cleanup(self) -> None:
        self.session.scene_closing()
        self._pollTimer.stop()
        self._levelTimer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event) -> None:
        self._pollTimer.stop()
        self.session.scene_closing()
        self._observeForLevels([])
        self.setParameterNode(None)
        self.ui.levelsStatusLabel.text = ""
        self.ui.progressBar.setVisible(False)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        p = self._parameterNode
        if not p.inputVolume:
            p.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
        settings = qt.QSettings()
        if not p.modelPath and settings.value(SETTINGS + "ModelPath"):  # settings persist across scenes
            p.model = ModelChoice[settings.value(SETTINGS + "Model", "rootletseg")]
            p.modelPath = settings.value(SETTINGS + "ModelPath")
            p.device = Device[settings.value(SETTINGS + "Device", "auto")]

    def setParameterNode(self, parameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._parameterNode = parameterNode
        self.session.params = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
            self._onParameterNodeModified()

    # ---------------------------------------------------------------- state -> GUI (selector signals ignored)
    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        p = self._parameterNode
        if p is None:
            return
        running = self.session.running
        problem = None if running else session.apply_problem(bool(p.inputVolume), p.model, p.modelPath)
        self.ui.applyButton.text = _("Cancel") if running else _("Apply")
        self.ui.applyButton.toolTip = problem or (_("Stop the segmentation") if running else _("Segment the rootlets"))
        self.ui.applyButton.enabled = problem is None
        for widget in (self.ui.inputVolumeSelector, self.ui.modelComboBox, self.ui.deviceComboBox,
                       self.ui.ttaCheckBox, self.ui.outputSegmentationSelector):
            widget.enabled = not running
        self.ui.modelPathLineEdit.enabled = self.ui.modelFolderButton.enabled = p.model == ModelChoice.local
        with self.session.guard.writing_gui():
            if self.ui.modelPathLineEdit.currentPath != p.modelPath:
                self.ui.modelPathLineEdit.currentPath = p.modelPath
        panel_session.show_cord_in_selector(p, self.ui.cordSegmentSelector, self.session.guard)
        if p.levelTable is not None:
            self.ui.levelTableView.setMRMLTableNode(p.levelTable)
        self._observeForLevels(self.session.level_observation_targets())
        hasLevels = self.session.has_level_result
        for kind, button in self._exportButtons().items():
            button.enabled = hasLevels if kind in panel_session.LEVEL_EXPORT_KINDS else bool(p.outputSegmentation)
        self.ui.showChartButton.enabled = hasLevels
        self.ui.exportAllButton.enabled = bool(p.outputSegmentation) and not running

    def onModelPathChanged(self, path) -> None:
        if self._parameterNode is not None and not self.session.guard.active and self._parameterNode.modelPath != path:
            self._parameterNode.modelPath = path

    def onModelFolder(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Model folder"),
                                                     self._setting("LastModelFolder"))
        if folder:
            qt.QSettings().setValue(SETTINGS + "LastModelFolder", folder)
            self._parameterNode.modelPath = folder

    def onCordSegmentChanged(self, *args) -> None:
        if self._parameterNode is not None:
            with slicer.util.NodeModify(self._parameterNode):
                panel_session.cord_from_selector(self._parameterNode, self.ui.cordSegmentSelector, self.session.guard)

    # ---------------------------------------------------------------- live level updates
    def _observeForLevels(self, nodes) -> None:
        """Observe edits of the level inputs (each node once); a change restarts a 500 ms single-shot timer."""
        if [n.GetID() for n in nodes] == [n.GetID() for n in getattr(self, "_observedNodes", [])]:
            return
        for observed, event, callback in self._levelObservations:
            self.removeObserver(observed, event, callback)
        self._levelObservations, self._observedNodes = [], list(nodes)
        for observed, event, what in panel_session.level_observations(nodes, slicer):
            callback = self._onPointPositionDefined if what == "placed" else self._scheduleLevelUpdate
            self.addObserver(observed, event, callback)
            self._levelObservations.append((observed, event, callback))

    def _onPointPositionDefined(self, caller=None, event=None) -> None:
        self.session.point_placed(caller)
        self._scheduleLevelUpdate()

    def _onInteractionMode(self, caller=None, event=None) -> None:
        if caller.GetCurrentInteractionMode() != slicer.vtkMRMLInteractionNode.Place:
            self.session.placement_ended()

    def _scheduleLevelUpdate(self, caller=None, event=None) -> None:
        p = self._parameterNode
        if p is not None and p.autoUpdateLevels and not self.session.running:
            self._levelTimer.start()

    def updateLevels(self, showErrors=False) -> None:
        self._levelTimer.stop()
        if self._parameterNode is None or self.session.running:
            return
        try:
            self.ui.levelsStatusLabel.text = self.session.update_levels()
        except UserError as error:
            self.ui.levelsStatusLabel.text = str(error)
            if showErrors:
                slicer.util.errorDisplay(str(error))
        self._onParameterNodeModified()

    def onShowChart(self) -> None:
        if self.session.chart_node is not None and slicer.mrmlScene.IsNodePresent(self.session.chart_node):
            slicer.modules.plots.logic().ShowChartInLayout(self.session.chart_node)

    def onShow3D(self, show) -> None:
        node = self._parameterNode.outputSegmentation if self._parameterNode else None
        if node is not None and node.GetDisplayNode() is not None:
            if show:
                node.CreateClosedSurfaceRepresentation()
            node.GetDisplayNode().SetVisibility3D(show)

    # ---------------------------------------------------------------- apply / cancel
    def onApplyButton(self) -> None:
        if self.session.running:
            self.ui.statusLabel.text = _("Cancelling...")
            self.session.cancel()  # returns at once; the poll timer reports the end
            return
        p = self._parameterNode
        if self.session.level_segments_edited() and not slicer.util.confirmOkCancelDisplay(
                _("The level segments were edited. Segmenting again replaces those edits. Continue?")):
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to start the segmentation."), waitCursor=True):
            if not self.logic.ensureDependencies():
                self.ui.statusLabel.text = _("Missing Python packages were not installed.")
                return
            model = session.model_argument(p.model, p.modelPath)
            for key, value in (("Model", p.model.name), ("ModelPath", p.modelPath), ("Device", p.device.name)):
                qt.QSettings().setValue(SETTINGS + key, value)
            self.session.start(model, session.cli_device(p.device), p.tta)
            self.ui.logTextEdit.clear()
            self.ui.progressBar.value = 0
            self.ui.progressBar.setVisible(True)
            self.ui.statusLabel.text = _("Starting...")
            self._pollTimer.start()
        self._onParameterNodeModified()

    def _pollChild(self) -> None:
        events = self.session.poll()
        for line in self.session.log_lines:
            self.ui.logTextEdit.appendPlainText(line)
        self.session.log_lines.clear()
        for event in events:
            percent, text = child_process.describe_event(event)
            if percent is not None:
                self.ui.progressBar.value = percent
            if text:
                self.ui.statusLabel.text = text
            if event.get("type") == "finished":
                self._onFinished(event)
        if not self.session.running:
            self._pollTimer.stop()

    def _onFinished(self, event) -> None:
        self._pollTimer.stop()
        self.ui.progressBar.setVisible(False)
        try:
            with slicer.util.tryWithErrorDisplay(_("Segmentation failed."), waitCursor=True):
                self.ui.statusLabel.text = _("Failed.")
                self.ui.statusLabel.text = self.session.finish(event)
                p = self._parameterNode
                if not event.get("cancelled"):
                    self.onShow3D(self.ui.show3DCheckBox.checked)
                    slicer.util.setSliceViewerLayers(background=p.inputVolume)
                    self.updateLevels()
        finally:
            for line in self.session.log_lines:
                self.ui.logTextEdit.appendPlainText(line)
            self.session.log_lines.clear()
            self._onParameterNodeModified()

    # ---------------------------------------------------------------- cord and discs
    def _openFile(self, title, filters, key):
        path = qt.QFileDialog.getOpenFileName(slicer.util.mainWindow(), title, self._setting(key), filters)
        if path:
            qt.QSettings().setValue(SETTINGS + key, str(Path(path).parent))
        return path

    def _setting(self, key):
        return str(qt.QSettings().value(SETTINGS + key, "") or Path.home())

    def onLoadCordFile(self) -> None:
        path = self._openFile(_("Load spinal cord mask"), _("Cord mask (*.nii.gz *.nii *.nrrd *.mha);;All files (*)"),
                              "LastInputFolder")
        if path:
            with slicer.util.tryWithErrorDisplay(_("Failed to load the cord mask."), waitCursor=True):
                node, segmentId = session.load_cord_mask(slicer.mrmlScene, path)
                self._parameterNode.cordSegmentation, self._parameterNode.cordSegmentId = node, segmentId

    def _placePoint(self, pmj: bool) -> None:
        label = self.session.next_point_label(pmj)
        if not label:
            slicer.util.infoDisplay(_("All discs C2/C3 to T1/T2 are placed. Move a point to correct it."))
            return
        slicer.modules.markups.logic().SetActiveList(self.session.discs_node())
        slicer.modules.markups.logic().StartPlaceMode(False)
        self.ui.statusLabel.text = _("Click the {name} position in a view.").format(name=label)

    def onImportDiscLabels(self) -> None:
        path = self._openFile(_("Import SCT disc labels"), _("Disc labels (*.nii.gz *.nii *.nrrd *.mha);;All files (*)"),
                              "LastInputFolder")
        if path:
            with slicer.util.tryWithErrorDisplay(_("Failed to import the disc labels."), waitCursor=True):
                self.session.import_disc_labels(path)

    # ---------------------------------------------------------------- exports
    def onExport(self, kind: str) -> None:
        p = self._parameterNode
        name = p.inputVolume.GetName() if p.inputVolume is not None else "rootlets"
        default = os.path.join(self._setting("LastExportFolder"), session.export_filename(name, kind))
        chosen = qt.QFileDialog.getSaveFileName(slicer.util.mainWindow(), _("Export"), default,
                                                session.EXPORT_FILTERS[kind])
        if not chosen:
            return
        path, unconfirmed = session.export_path(chosen, kind)
        if unconfirmed and not slicer.util.confirmOkCancelDisplay(
                _("'{path}' exists. Replace it?").format(path=path)):
            return
        with slicer.util.tryWithErrorDisplay(_("Export failed."), waitCursor=True):
            written = self.session.export(kind, path, overwrite=True)  # replacing was confirmed
            qt.QSettings().setValue(SETTINGS + "LastExportFolder", str(Path(written).parent))
            self.ui.statusLabel.text = _("Wrote {path}").format(path=written)

    def onExportAll(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Export all into"),
                                                     self._setting("LastExportFolder"))
        if not folder:
            return
        existing = [str(p) for p in self.session.export_all_paths(folder).values() if p.exists()]
        if existing and not slicer.util.confirmOkCancelDisplay(
                _("These files exist and will be replaced:\n{files}").format(files="\n".join(existing))):
            return
        with slicer.util.tryWithErrorDisplay(_("Export failed."), waitCursor=True):
            written = self.session.export_all(folder, overwrite=bool(existing))
            qt.QSettings().setValue(SETTINGS + "LastExportFolder", folder)
            self.ui.statusLabel.text = _("Wrote {count} files into {folder}").format(count=len(written), folder=folder)


class RootletSegModuleLogic(ScriptedLoadableModuleLogic):
    """Parameter node and dependency installation. (Not named RootletSegLogic: the core package's name.)"""

    def getParameterNode(self):
        return RootletSegParameterNode(super().getParameterNode())

    @staticmethod
    def ensureDependencies(confirm: bool = True) -> bool:
        """True when torch and nnunetv2 are importable, installing them after ONE confirmation when missing."""
        missing = dependencies.missing_packages()
        if not missing:
            return True
        plan = dependencies.install_plan(missing, hasattr(slicer.modules, "pytorchutils"),
                                         dependencies.installed_version("torch"), hasattr(slicer.modules, "slicernnunet"))
        if plan.blocked:
            slicer.util.errorDisplay(plan.blocked)
            return False
        if confirm and not slicer.util.confirmOkCancelDisplay(plan.message, windowTitle=_("Install Python packages")):
            return False
        dependencies.run_plan(plan, slicer.util.pip_install)
        return True


class RootletSegTest(ScriptedLoadableModuleTest):
    """The demo model on the phantom through the panel's session (the Apply path); skipped without torch/nnunetv2."""

    def runTest(self):
        slicer.mrmlScene.Clear()
        self.test_DemoModelOnPhantom()

    def test_DemoModelOnPhantom(self):
        missing = dependencies.missing_packages()
        if missing:
            self.skipTest(f"{', '.join(missing)} not installed: press Apply once in the module to install them.")
        params = RootletSegModuleLogic().getParameterNode()
        params.inputVolume = session.load_phantom(slicer.mrmlScene)
        run = panel_session.PanelSession(slicer.mrmlScene, params, python=child_process.python_executable())
        finished = [e for e in run.start("demo", "cpu").wait(timeout=900) if e.get("type") == "finished"][-1]
        self.assertTrue(run.finish(finished).startswith("Done"))
        self.assertIn("spinal", run.update_levels())
        self.delayDisplay("Test passed")
